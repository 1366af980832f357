"""Nova's extra-spec matching operators (``nova/scheduler/filters/extra_specs_ops.py``).

A requirement is a value, optionally led by an operator: ``"= 4"`` (at least 4),
``"== 4"``, ``"!= 4"``, ``">= 4"``, ``"<= 4"`` (numbers), ``"s== x"``, ``"s!= x"``,
``"s< x"``, ``"s<= x"``, ``"s> x"``, ``"s>= x"`` (strings), ``"<in> x"``
(substring), ``"<all-in> a b"`` (every word in a list value), ``"<or> a <or> b"``
(any of). A bare value must equal the host's value as a string.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any


def _float(value: Any) -> float:
    return float(value)


def _all_in(have: Any, *want: str) -> bool:
    if isinstance(have, str):
        items = have.replace("[", " ").replace("]", " ").replace(",", " ").replace("'", " ")
        have = items.split()
    return all(w in have for w in want)


_OPS: dict[str, Callable[..., bool]] = {
    "=": lambda x, y: _float(x) >= _float(y),
    "<in>": lambda x, y: y in x,
    "<all-in>": _all_in,
    "==": lambda x, y: _float(x) == _float(y),
    "!=": lambda x, y: _float(x) != _float(y),
    ">=": lambda x, y: _float(x) >= _float(y),
    "<=": lambda x, y: _float(x) <= _float(y),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}


def match(value: Any, req: str) -> bool:
    """True when the host's ``value`` meets the requirement ``req``."""
    words = str(req).split()
    if not words:
        return str(value) == ""
    op = words[0]
    if op == "<or>":
        return any(str(value) == w for w in words[1::2])
    if op in _OPS:
        args = words[1:]
        if not args:
            return False
        try:
            if op == "<all-in>":
                return _all_in(value, *args)
            return bool(_OPS[op](str(value), " ".join(args)))
        except (TypeError, ValueError):
            return False
    return str(value) == str(req)
