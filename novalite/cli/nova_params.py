"""Cheap coercion of `nova`'s command-line values, to keep typer's start-up fast.

typer (0.29) converts every non-flag parameter value through a pydantic
``TypeAdapter``, built on first use: importing pydantic and building the
adapters costs ~140 ms per run, half of `nova list`'s budget. `nova` only has
parameters of a few plain types (str, bool, int with bounds, Path, an Enum,
lists of str), so `install_fast_coercion` gives each such parameter a small coercer in
typer's place. A parameter of any other type, or a typer without the hook
(``_runtime_param``), keeps typer's own coercion: slower, never wrong.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import typer

Convert = Callable[[Any], Any]


class FastCoercion:
    """Duck-types typer's runtime parameter: ``coerce(value, param, ctx)``."""

    def __init__(self, convert: Convert, multiple: bool) -> None:
        self.convert = convert
        self.multiple = multiple

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if self.multiple else None
        try:
            if self.multiple:
                return [self.convert(item) for item in value]
            return self.convert(value)
        except (TypeError, ValueError) as exc:
            raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None


def _strip_optional(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else None
    return annotation


def _int_converter(low: Any, high: Any) -> Convert:
    def convert(value: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"'{value}' is not a valid integer.") from None
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = " and ".join(
                text
                for text in (
                    f"x>={low}" if low is not None else "",
                    f"x<={high}" if high is not None else "",
                )
                if text
            )
            raise ValueError(f"{number} is not in the range {bounds}.")
        return number

    return convert


def _enum_converter(enum: type[Enum], case_sensitive: bool) -> Convert:
    def convert(value: Any) -> Enum:
        if isinstance(value, enum):
            return value
        for member in enum:
            given, wanted = str(value), str(member.value)
            if given == wanted or (not case_sensitive and given.lower() == wanted.lower()):
                return member
        choices = ", ".join(repr(member.value) for member in enum)
        raise ValueError(f"'{value}' is not one of {choices}.")

    return convert


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on", "y", "t"}:
        return True
    if text in {"0", "false", "no", "off", "n", "f", ""}:
        return False
    raise ValueError(f"'{value}' is not a valid boolean.")


def _converter(annotation: Any, info: Any) -> Convert | None:
    """A converter for the plain types `nova` uses, else ``None``."""
    if annotation is str:
        return str
    if annotation is bool:
        return _bool
    if annotation is Path:
        return Path
    if annotation is int:
        return _int_converter(getattr(info, "min", None), getattr(info, "max", None))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum_converter(annotation, bool(getattr(info, "case_sensitive", True)))
    return None


def fast_coercion(annotation: Any, info: Any) -> FastCoercion | None:
    """A coercer for one parameter annotation, or ``None`` to leave it to typer."""
    plain = _strip_optional(annotation)
    multiple = typing.get_origin(plain) is list
    if multiple:
        (plain,) = typing.get_args(plain) or (None,)
    convert = _converter(plain, info)
    return None if convert is None else FastCoercion(convert, multiple)


def _parameters(command: Any, help_names: list[str]) -> Iterator[Any]:
    yield from getattr(command, "params", [])
    # The -h/--help option is made (and cached) on first use, from the context's names.
    get_help_option = getattr(command, "get_help_option", None)
    if get_help_option is not None:
        help_option = get_help_option(SimpleNamespace(help_option_names=help_names))
        if help_option is not None:
            yield help_option
    for sub in getattr(command, "commands", {}).values():
        yield from _parameters(sub, help_names)


def install_fast_coercion(command: Any, help_names: list[str]) -> int:
    """Give each plain parameter of ``command`` (and its subcommands) a fast coercer.

    ``help_names`` are the context's ``help_option_names``. Returns how many
    parameters got a coercer.
    """
    installed = 0
    for param in _parameters(command, help_names):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", "absent") is not None:
            continue
        coercion = fast_coercion(descriptor.annotation, descriptor.parameter_info)
        if coercion is not None:
            param._runtime_param = coercion
            installed += 1
    return installed
