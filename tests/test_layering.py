"""What each part may import (README, "Architecture"): Ray only in the search and compare's cluster path, the
registry and config pure declarations, the CLI light until a command runs. Each check imports in a fresh
interpreter and looks at ``sys.modules``."""

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "raysearch"
RAY_PARTS = {"raysearch.search.tuning", "raysearch.search.distributed", "raysearch.testing.faults"}
CORE = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py"))


def loaded(phases: list[list[str]], heavy: tuple[str, ...]) -> list[list[str]]:
    """Which of the ``heavy`` top-level packages are loaded after importing each phase's modules in turn."""
    code = (f"import sys\nfor phase in {phases!r}:\n    for m in phase: __import__(m)\n"
            f"    print(' '.join(h for h in {heavy!r} if h in sys.modules) or '-')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [line.split() for line in done.stdout.splitlines()]


def test_core_modules_do_not_import_ray_and_only_its_baseline_loads_lightgbm():
    core = [m for m in CORE if m not in RAY_PARTS and m != "raysearch.baselines.gbdt"]
    assert "raysearch.train.fusion_gcn" in core and "raysearch.export" in core and "raysearch.compare.runner" in core
    assert loaded([core, ["raysearch.baselines.gbdt"]], ("ray", "lightgbm")) == [["-"], ["lightgbm"]]


@pytest.mark.parametrize("modules", [["raysearch.cli"], ["raysearch.config", "raysearch.registry", "raysearch"]])
def test_cli_registry_and_config_load_no_heavy_package(modules):
    assert loaded([modules], ("torch", "ray", "lightgbm", "pandas")) == [["-"]]
