"""Data flows one way: a request goes down (HTTP → actors → writer → COMMIT), results
come back up as replies. The lower layers import nothing of the higher ones, so
they cannot call back into them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "eventd"

# A layer, and the layers above it that it must not import.
BELOW = {
    "storage": ("eventd.actors", "eventd.realtime", "eventd.http", "eventd.email"),
    "actors": ("eventd.http",),
    "realtime": ("eventd.actors", "eventd.http"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_a_layer_imports_nothing_from_the_layers_above_it(layer: str) -> None:
    modules = sorted((PACKAGE / layer).glob("*.py"))
    assert modules
    offending = {
        f"{path.name}: {name}"
        for path in modules
        for name in _imports(path)
        if name.startswith(BELOW[layer])
    }
    assert offending == set()
