"""The package keeps its layers: no upward import (lazy or not), no import cycle (see docs/architecture.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bayes_scaling import _layers

PACKAGE_DIR = Path(_layers.__file__).resolve().parent


def test_package_has_no_upward_import_and_no_cycle():
    assert _layers.violations(PACKAGE_DIR) == []


def test_every_module_is_in_a_layer():
    for module in _layers.modules(PACKAGE_DIR):
        _layers.layer_of(module)  # raises KeyError naming the module otherwise


def test_layer_map_is_documented():
    text = (PACKAGE_DIR.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name, members in _layers.LAYERS:
        assert name in text
        for member in members:
            assert f"`{member}" in text, f"docs/architecture.md does not describe {member}"


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    root = tmp_path / _layers.PACKAGE
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _plant(path: Path, line: str, *, inside_function: bool) -> None:
    code = f"\n\ndef _planted():\n    {line}\n" if inside_function else f"\n{line}\n"
    path.write_text(path.read_text(encoding="utf-8") + code, encoding="utf-8")


@pytest.mark.parametrize("inside_function", [False, True], ids=["module level", "lazy, in a function"])
def test_check_fails_on_a_planted_upward_import(package_copy: Path, inside_function: bool):
    _plant(package_copy / "allocation.py", "from .report import write_report  # noqa", inside_function=inside_function)
    problems = _layers.violations(package_copy)
    assert any(p.startswith("allocation (allocation) imports report (report): upward") for p in problems), problems


def test_check_fails_on_a_planted_type_checking_import_from_a_subpackage(package_copy: Path):
    _plant(package_copy / "laws" / "base.py", "if TYPE_CHECKING:\n    from ..fitted import Fit", inside_function=False)
    problems = _layers.violations(package_copy)
    assert any("laws.base (laws and cards) imports fitted (posterior): upward" in p for p in problems), problems


def test_check_fails_on_a_planted_cycle_inside_a_layer(package_copy: Path):
    # units already imports errors; errors importing units closes a cycle inside the foundation layer
    _plant(package_copy / "errors.py", "from .units import LOG_6  # noqa", inside_function=True)
    problems = _layers.violations(package_copy)
    assert any(p.startswith("import cycle:") and "errors" in p and "units" in p for p in problems), problems


def test_check_rejects_a_module_outside_the_map(package_copy: Path):
    (package_copy / "stray.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(KeyError, match="stray"):
        _layers.violations(package_copy)
