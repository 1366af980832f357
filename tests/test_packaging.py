"""The wheel ships every package of the source tree.

pyproject.toml lists novalite's packages by name (``drivers/`` ships as
``novalite_drivers``); a package left off that list works from a checkout and is
missing from an installed wheel. This keeps the list and the tree in step.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tree_packages() -> set[str]:
    found = set()
    for top, name in (("novalite", "novalite"), ("drivers", "novalite_drivers")):
        base = ROOT / top
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join((name, *rel.parts)))
    return found


def test_every_package_of_the_tree_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert _tree_packages() - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - _tree_packages() == set(), "these are listed but not in the tree"
