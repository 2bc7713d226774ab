"""``prism strategies`` lists every strategy that loads and names each registered entry point
that does not (and why), instead of failing on one researcher's broken module; building a
strategy still refuses while one is broken, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY_POINTS = """[prism.strategies]
raising = broken_strategies:Anything
missing = no_such_module_here:Thing
plain = broken_strategies_plain:NotAStrategy
"""


@pytest.fixture(scope="module")
def broken_install(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose path holds a distribution registering three broken strategies: one
    module raises at import, one does not exist, one names a class that is not a strategy."""
    root = tmp_path_factory.mktemp("broken")
    info = root / "broken_strategies-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-strategies\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (root / "broken_strategies.py").write_text("raise ValueError('half-written module')\n")
    (root / "broken_strategies_plain.py").write_text("class NotAStrategy:\n    pass\n")
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "400"}


def run_prism(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the ``prism`` script of this venv with ``env``."""
    prism = Path(sys.executable).with_name("prism")
    return subprocess.run([str(prism), *argv], capture_output=True, text=True, env=env, timeout=120)


def test_listing_names_each_broken_entry_point_and_still_lists_the_rest(
    broken_install: dict[str, str],
) -> None:
    done = run_prism(broken_install, "strategies")
    assert done.returncode == 0, done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    assert "sma_crossover" in rows
    assert "time_series_momentum" in rows
    assert "CANNOT LOAD" in rows["raising"]
    assert "ValueError: half-written module" in rows["raising"]
    assert "ModuleNotFoundError" in rows["missing"]
    assert "not a strategy dataclass" in rows["plain"]
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 3


def test_building_a_strategy_refuses_while_an_entry_point_is_broken(
    broken_install: dict[str, str],
) -> None:
    done = run_prism(broken_install, "backtest", "sma_crossover", "--param", "fast=2")
    assert done.returncode == 1
    assert "strategy entry point" in done.stderr
    assert "Traceback" not in done.stderr
