import hashlib
import math

import pandas as pd
import pytest
from scipy.stats import norm

from prism.backtest.validation import Violation
from prism.core.errors import ConfigError
from prism.core.settings import GateSettings
from prism.registry.gates import (
    NOT_RECORDED,
    Mismatch,
    Overrides,
    Recomputed,
    RunEvidence,
    deflated_oos_sharpe,
    evaluate,
    load_gates_file,
    trials,
)

GATES = GateSettings(
    min_sharpe=0.3,
    max_drawdown=0.35,
    min_trades=5,
    min_deflated_sharpe=0.5,
    require_lookahead_check=True,
    require_parity_check=True,
)
PASSED = {"prism.lookahead_check": "passed", "prism.parity_check": "passed"}
OOS = {"oos_skew": 0.0, "oos_kurtosis": 3.0, "oos_n_periods": 101.0}


def _by_gate(evidence: RunEvidence, gates: GateSettings = GATES) -> dict:
    return {result.gate: result for result in evaluate(evidence, gates)}


CLEAN = Recomputed(lookahead=(), parity=True, git_dirty="false", code_sha256="c0de", problems=())
"""Recomputed evidence with both checks passed, a clean tree and no gaps."""


def _recomputed(metrics: dict, **changes) -> RunEvidence:
    """A run whose logged metrics equal the recomputed ``metrics``."""
    fields = {**CLEAN.__dict__, "metrics": metrics, **changes}
    return RunEvidence(dict(metrics), PASSED, recomputed=Recomputed(**fields))


def test_threshold_gates_compare_the_recomputed_metrics_inclusively():
    evidence = _recomputed({"oos_sharpe": 0.3, "max_drawdown": 0.3500001, "n_trades": 5.0, **OOS})

    results = _by_gate(evidence)

    assert results["out-of-sample Sharpe"].passed
    assert not results["max drawdown"].passed
    assert results["max drawdown"].required == "<= 0.35"
    assert results["trades"].passed and results["trades"].actual == "5"
    assert results["logged metrics"].passed and results["evidence"].passed


def test_what_a_run_logged_and_tagged_about_itself_passes_nothing_without_recomputation():
    evidence = RunEvidence(
        {"oos_sharpe": 3.0, "max_drawdown": 0.01, "n_trades": 500.0, **OOS}, PASSED
    )

    results = _by_gate(evidence)

    assert not results["evidence"].passed
    assert results["out-of-sample Sharpe"].note == NOT_RECORDED
    assert not results["look-ahead check"].passed and results["look-ahead check"].note == "not run"
    assert not results["parity check"].passed
    assert results["deflated Sharpe"].note.startswith(NOT_RECORDED)
    assert not results["clean tree"].passed


def test_a_logged_metric_its_equity_does_not_give_fails_naming_the_metric():
    evidence = _recomputed(
        {"oos_sharpe": 0.4, "max_drawdown": 0.1, "n_trades": 50.0, **OOS},
        mismatches=(Mismatch("oos_sharpe", 2.5, 0.4),),
    )

    failed = [r for r in evaluate(evidence, GATES) if not r.passed]

    assert [(r.gate, r.metric, r.actual, r.required) for r in failed] == [
        ("logged metric", "oos_sharpe", "2.5", "= 0.4")
    ]


def test_a_recomputed_look_ahead_violation_fails_the_check_whatever_the_tag_says():
    t = pd.Timestamp("2018-01-02", tz="UTC")
    evidence = _recomputed(
        {"oos_sharpe": 1.0, "max_drawdown": 0.1, "n_trades": 50.0, **OOS},
        lookahead=(Violation(t, t, "SPX", 1.0, 0.0),),
    )

    result = _by_gate(evidence)["look-ahead check"]

    assert evidence.tags["prism.lookahead_check"] == "passed"
    assert not result.passed and result.actual == "failed" and "1 weight" in result.note


def test_a_dirty_tree_and_gaps_fail_unless_waived_with_a_reason():
    metrics = {"oos_sharpe": 1.0, "max_drawdown": 0.1, "n_trades": 50.0, **OOS}
    evidence = _recomputed(metrics, git_dirty="true", allow_gaps=True)
    waiver = Overrides(dirty_tree=True, data_gaps=True, reason="hotfix, reviewed by bob")

    refused = _by_gate(evidence)
    waived = {r.gate: r for r in evaluate(evidence, GATES, waiver)}

    assert not refused["clean tree"].passed and not refused["data gaps"].passed
    assert waived["clean tree"].passed and "hotfix, reviewed by bob" in waived["clean tree"].note
    assert waived["data gaps"].actual == "overridden"
    with pytest.raises(ConfigError, match="needs a reason"):
        Overrides(dirty_tree=True).check()


def test_checks_that_are_not_required_are_not_gates():
    gates = GATES.model_copy(update={"require_lookahead_check": False})

    assert "look-ahead check" not in _by_gate(RunEvidence({}, {}), gates)


def test_the_trials_behind_a_run_are_the_larger_of_its_own_and_its_experiments():
    assert trials(RunEvidence({"trials": 3.0}, {}, experiment_trials=100)) == 100
    assert trials(RunEvidence({"trials": 100.0}, {}, experiment_trials=7)) == 100
    assert trials(RunEvidence({}, {}, experiment_trials=1)) == 1


def test_the_deflated_sharpe_gate_reproduces_the_papers_example():
    """Bailey and López de Prado (2014): annualised SR 2.5 over 1,250 daily returns (250 a year),
    100 trials with annualised SR variance 0.5, skewness -3, kurtosis 10: DSR = 0.9004."""
    evidence = RunEvidence(
        {
            "oos_sharpe": 2.5,
            "oos_skew": -3.0,
            "oos_kurtosis": 10.0,
            "oos_n_periods": 1250.0,
            "oos_sharpe_variance": 0.5,
            "trials": 100.0,
        },
        PASSED,
        params={"periods_per_year": "250"},
    )

    value, how = deflated_oos_sharpe(evidence)

    assert value == pytest.approx(0.9004, abs=5e-5)
    assert "100 trials" in how and "sweep" in how
    gate = _by_gate(evidence, GATES.model_copy(update={"min_deflated_sharpe": 0.95}))
    assert not gate["deflated Sharpe"].passed


def test_a_lone_run_is_deflated_against_skill_less_trials_of_its_length():
    """Per-bar SR 0.2 over T=101 normal returns. One trial: the benchmark is 0, so
    DSR = Phi(0.2 * sqrt(100) / sqrt(1 + 0.2**2 / 2)). Two trials, Sharpe variance 1/T:
    the benchmark is sqrt(1/101) * ((1-g) * Phi^-1(1/2) + g * Phi^-1(1 - 1/(2e)))."""
    per_bar = 0.2
    metrics = {"oos_sharpe": per_bar * math.sqrt(252), **OOS}
    alone = RunEvidence(metrics, PASSED)
    paired = RunEvidence(metrics, PASSED, experiment_trials=2)
    gamma = 0.5772156649015329
    benchmark = math.sqrt(1 / 101) * (
        (1 - gamma) * norm.ppf(0.5) + gamma * norm.ppf(1 - 1 / (2 * math.e))
    )
    spread = math.sqrt(1 + per_bar**2 / 2)

    assert deflated_oos_sharpe(alone)[0] == pytest.approx(norm.cdf(per_bar * 10 / spread))
    assert deflated_oos_sharpe(paired)[0] == pytest.approx(
        norm.cdf((per_bar - benchmark) * 10 / spread)
    )


def test_the_timeframe_parameter_sets_the_annualisation():
    hourly = RunEvidence(
        {"oos_sharpe": 0.2 * math.sqrt(252 * 6.5), **OOS},
        PASSED,
        params={"notebook.timeframe": "1h"},
    )

    assert deflated_oos_sharpe(hourly)[0] == pytest.approx(norm.cdf(0.2 * 10 / math.sqrt(1.02)))


def test_the_gates_file_gives_thresholds_version_and_hash(tmp_path, monkeypatch):
    monkeypatch.delenv("PRISM_GATE_MIN_TRADES", raising=False)
    path = tmp_path / "gates.toml"
    path.write_text("version = 7\n[gates]\nmin_sharpe = 1.25\nmin_trades = 40\n")

    loaded = load_gates_file(path)

    assert loaded.version == 7
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (loaded.thresholds.min_sharpe, loaded.thresholds.min_trades) == (1.25, 40)
    assert loaded.thresholds.max_drawdown == GateSettings.model_fields["max_drawdown"].default
    assert loaded.overrides == ()


def test_a_prism_gate_variable_overrides_the_file_and_is_named(tmp_path, monkeypatch):
    path = tmp_path / "gates.toml"
    path.write_text("version = 2\n[gates]\nmin_trades = 40\n")
    monkeypatch.setenv("PRISM_GATE_MIN_TRADES", "3")

    loaded = load_gates_file(path)

    assert loaded.thresholds.min_trades == 3
    assert loaded.overrides == ("PRISM_GATE_MIN_TRADES",)
    assert loaded.record()["overrides"] == ["PRISM_GATE_MIN_TRADES"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[gates]\nmin_sharpe = 1\n", "needs a whole-number `version`"),
        ("version = 1\n[gates]\nmin_sharp = 1\n", "unknown key\\(s\\) min_sharp"),
        ("version = 1\n[gates]\nmin_trades = 'many'\n", "min_trades"),
        ("version = 1\n[gates\n", "not valid TOML"),
    ],
)
def test_a_broken_gates_file_is_named_with_the_problem(tmp_path, content, message):
    path = tmp_path / "gates.toml"
    path.write_text(content)

    with pytest.raises(ConfigError, match=message):
        load_gates_file(path)


def test_a_missing_gates_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match=r"no gates file at .*PRISM_GATES_FILE"):
        load_gates_file(tmp_path / "absent.toml")


def test_the_repositorys_gates_file_loads():
    from prism.core.settings import project_root

    loaded = load_gates_file(project_root() / "research" / "gates.toml")

    assert loaded.version >= 1


def test_failed_runs_are_reported_apart_from_the_trials():
    metrics = {"oos_sharpe": 1.0, **OOS}

    value, how = deflated_oos_sharpe(
        RunEvidence(metrics, PASSED, experiment_trials=3, failed_trials=2)
    )

    assert value is not None and how.startswith("3 trials") and "2 failed run(s) not counted" in how
