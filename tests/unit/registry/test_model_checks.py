"""The pure model checks: a signature against a bar frame, approval records, lineage tags."""

from __future__ import annotations

from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from prism.data.bars import empty_bars
from prism.registry.checks import approval_problems, lineage_problems, signature_problems
from prism.strategies import SmaCrossover, strategy_params
from prism.strategies.pyfunc import StrategyModel, example_bars, strategy_signature

LINEAGE = {"prism.notebook": "notebooks/02.ipynb", "git_commit": "abc123", "prism.data_hash": "f0"}


def _signature(bundled_bars) -> ModelSignature:
    strategy = SmaCrossover(fast=5, slow=20)
    model = StrategyModel(strategy.name, strategy_params(strategy))
    return strategy_signature(model, example_bars(bundled_bars))


def test_the_logged_signature_accepts_the_bars_the_runner_reads(bundled_bars):
    signature = _signature(bundled_bars)

    assert signature_problems(signature, example_bars(bundled_bars)) == []
    assert signature_problems(signature, empty_bars()) == []


def test_a_signature_needing_another_column_or_none_at_all_is_a_problem(bundled_bars):
    good = _signature(bundled_bars)
    needs_vwap = ModelSignature(inputs=Schema([*good.inputs.inputs, ColSpec("double", "vwap")]))
    text_close = ModelSignature(
        inputs=Schema([c if c.name != "close" else ColSpec("long", "close") for c in good.inputs])
    )

    assert "vwap" in signature_problems(needs_vwap, example_bars(bundled_bars))[0]
    assert signature_problems(text_close, example_bars(bundled_bars)) != []
    assert "without a signature" in signature_problems(None, example_bars(bundled_bars))[0]


def test_only_a_promote_record_is_an_approval():
    assert approval_problems(["promote"]) == []
    assert approval_problems(["refuse", "promote"]) == []
    assert "refuse" in approval_problems(["refuse"])[0]
    assert "prism models promote" in approval_problems([])[0]


def test_lineage_needs_a_run_with_notebook_commit_and_data_hash():
    assert lineage_problems("r1", LINEAGE, {}) == []
    no_hash = {k: v for k, v in LINEAGE.items() if k != "prism.data_hash"}
    assert lineage_problems("r1", no_hash, {"data_hash": "f0"}) == []
    assert "data hash" in lineage_problems("r1", no_hash, {})[0]
    assert "git commit" in lineage_problems("r1", {**LINEAGE, "git_commit": ""}, {})[0]
    assert "not in the tracking store" in lineage_problems("r1", None, {})[0]
    assert "names no MLflow run" in lineage_problems(None, None, {})[0]
