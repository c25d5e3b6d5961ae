"""The import rules the layout depends on: policy and robots never import each other (nor agent or ui), and
hearth_wire, which both use, imports neither, so the robot side installs and runs without the model code."""

from __future__ import annotations

import ast

import pytest

from tests.support import REPO_ROOT

FORBIDDEN = {
    "policy": {"agent", "robots", "ui"},
    "robots": {"agent", "policy", "ui"},
    "hearth_wire": {"agent", "policy", "robots", "ui"},
}


def _imported_tops(source: str) -> set[str]:
    tops: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    return tops


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(_imported_tops(path.read_text()) & FORBIDDEN[package])
        for path in (REPO_ROOT / package).rglob("*.py")
    }
    assert {path: tops for path, tops in offenders.items() if tops} == {}


def test_the_check_sees_function_level_imports() -> None:
    assert _imported_tops("def f():\n    from robots.bridge import BridgeRobot\n    import policy.wire\n") == {
        "robots", "policy",
    }  # fmt: skip
