"""Promotion gates: what a research run must show before its model may trade.

The thresholds live in a versioned file in the repository (``research/gates.toml``: a
``version`` and a ``[gates]`` table), so a change of policy is a reviewed commit, and every
approval records the file's version and SHA-256. A ``PRISM_GATE_*`` variable still overrides a
threshold for a session; the approval then lists it under ``overrides``.

The gates judge evidence recomputed at promotion (:mod:`prism.registry.evidence`), not what
the run says of itself:

- **evidence**: the model loads, its code is the code it was logged with, the stored bars hash
  to the run's data hash and a fresh backtest of the model gives the logged equity curve;
- **logged metrics**: every gated metric the run logged equals the one recomputed from its
  logged equity and trades (a mismatch names the metric);
- ``oos_sharpe >= min_sharpe``, ``max_drawdown <= max_drawdown``, ``n_trades >= min_trades``,
  on the recomputed metrics;
- the deflated Sharpe ratio (Bailey and López de Prado, 2014) of the out-of-sample segment,
  from ``oos_sharpe``, ``oos_skew``, ``oos_kurtosis`` and ``oos_n_periods``, given the number
  of trials behind the run, ``>= min_deflated_sharpe``;
- the look-ahead and backtest/live parity checks, re-run on the model and the stored bars;
- **clean tree**: the run was made from a commit without uncommitted changes, and **data
  gaps**: it did not set ``allow_gaps`` and its bars have no open gap; either may be overridden
  with a reason (:class:`Overrides`), which the approval records.

Anything not recomputed fails its gate: the gates fail closed. Everything here is pure (no
MLflow, no database); :mod:`prism.registry.promotion` gathers the evidence.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from prism.core.errors import ConfigError
from prism.core.settings import GateSettings, Settings, project_root

if TYPE_CHECKING:
    from prism.backtest.validation import Violation

NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class GatesFile:
    """The gates file as loaded: where it is, its version and hash, the effective thresholds,
    and the ``PRISM_GATE_*`` variables that override it."""

    path: Path
    version: int
    sha256: str
    thresholds: GateSettings
    overrides: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """Return what an approval stores about the gates that judged it."""
        return {
            "file": display_path(self.path),
            "version": self.version,
            "sha256": self.sha256,
            "overrides": list(self.overrides),
        }


def display_path(path: Path) -> str:
    """Return ``path`` relative to the checkout when it is inside it."""
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def _read(path: Path) -> tuple[bytes, dict[str, Any]]:
    if not path.exists():
        raise ConfigError(
            f"no gates file at {path}; create it with a `version` and a [gates] table "
            "(see research/gates.toml in the repository) or set PRISM_GATES_FILE"
        )
    raw = path.read_bytes()
    try:
        return raw, tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"the gates file {path} is not valid TOML: {err}") from err


def load_gates_file(path: Path) -> GatesFile:
    """Return the gates of the file at ``path``, with any ``PRISM_GATE_*`` override applied."""
    raw, document = _read(path)
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(
            f"the gates file {path} needs a whole-number `version` at the top "
            "(raise it with every change of a threshold)"
        )
    values = document.get("gates", {})
    unknown = sorted(set(document) - {"version", "gates"}) + sorted(
        set(values) - set(GateSettings.model_fields)
    )
    if unknown:
        raise ConfigError(
            f"the gates file {path} has unknown key(s) {', '.join(unknown)}; "
            f"the gates are {', '.join(GateSettings.model_fields)}"
        )
    from_environment = GateSettings()
    overridden = sorted(from_environment.model_fields_set)
    try:
        thresholds = GateSettings(
            **{**values, **{name: getattr(from_environment, name) for name in overridden}}
        )
    except ValidationError as err:
        problem = err.errors()[0]
        raise ConfigError(
            f"the gates file {path}: {'.'.join(map(str, problem['loc']))}: {problem['msg']}"
        ) from err
    return GatesFile(
        path=path,
        version=version,
        sha256=hashlib.sha256(raw).hexdigest(),
        thresholds=thresholds,
        overrides=tuple(f"PRISM_GATE_{name.upper()}" for name in overridden),
    )


def load_gates(settings: Settings) -> GateSettings:
    """Return the promotion gates: the gates file's values, under any ``PRISM_GATE_*``."""
    return load_gates_file(settings.gates_file).thresholds


def gates_file_source(path: Path, name: str) -> str:
    """Return where gate ``name``'s value comes from when no variable sets it (``prism config``)."""
    try:
        _, document = _read(path)
    except ConfigError:
        return "default (no gates file)"
    if name in document.get("gates", {}):
        return f"{display_path(path)} (version {document.get('version')})"
    return "default"


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: what it reads, what it requires, what the run has, and why."""

    gate: str
    metric: str
    required: str
    actual: str
    passed: bool
    note: str = ""

    @property
    def value(self) -> str:
        """Return the run's value as shown (``-`` when not recorded)."""
        return self.actual


@dataclass(frozen=True)
class Mismatch:
    """A metric the run logged that its own equity and trades do not give."""

    metric: str
    logged: float | None
    recomputed: float


@dataclass(frozen=True)
class Recomputed:
    """What :func:`prism.registry.evidence.recompute` found: recomputed metrics, the logged
    metrics that disagree with them, the checks' outcomes (None: could not run), the run's git
    state and gaps, the code hash, and every problem that kept the evidence from being
    recomputed."""

    metrics: dict[str, float] = field(default_factory=dict)
    mismatches: tuple[Mismatch, ...] = ()
    lookahead: tuple[Violation, ...] | None = None
    parity: bool | None = None
    git_dirty: str = "unknown"
    allow_gaps: bool = False
    gaps: tuple[str, ...] = ()
    code_sha256: str = ""
    problems: tuple[str, ...] = ("the evidence was not recomputed",)


@dataclass(frozen=True)
class Overrides:
    """What the promoter waives, and why: a run from a dirty tree, a run on bars with gaps."""

    dirty_tree: bool = False
    data_gaps: bool = False
    reason: str = ""

    def names(self) -> list[str]:
        """Return the waived gates' names."""
        return [
            name
            for name, on in (("clean tree", self.dirty_tree), ("data gaps", self.data_gaps))
            if on
        ]

    def check(self) -> None:
        """Raise a ConfigError when something is waived without a reason."""
        if self.names() and not self.reason.strip():
            raise ConfigError(
                f"overriding the {' and '.join(self.names())} gate needs a reason; pass "
                '--override-reason "..." (it is kept with the approval)'
            )


@dataclass(frozen=True)
class RunEvidence:
    """What a run recorded, what was recomputed of it, and how many trials its experiment
    holds."""

    metrics: dict[str, float]
    tags: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    experiment_trials: int = 1
    recomputed: Recomputed = field(default_factory=Recomputed)
    failed_trials: int = 0
    """Failed or killed runs of the experiment: reported, not counted as trials."""


def _number(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or math.isnan(value) else float(value)


def _format(value: float) -> str:
    return f"{value:.4g}"


def _threshold_gate(
    name: str, metric: str, metrics: dict[str, float], bound: float, at_least: bool
) -> GateResult:
    required = f"{'>=' if at_least else '<='} {_format(bound)}"
    value = _number(metrics, metric)
    if value is None:
        return GateResult(name, metric, required, "-", False, NOT_RECORDED)
    passed = value >= bound if at_least else value <= bound
    return GateResult(name, metric, required, _format(value), passed)


def trials(evidence: RunEvidence) -> int:
    """Return the trials behind a run: its own ``trials`` metric or its experiment's count,
    whichever is larger (a sweep's child carries the grid size; a lone run counts its
    experiment's other attempts)."""
    from prism.research.tracking import TRIALS_METRIC

    own = _number(evidence.metrics, TRIALS_METRIC)
    return max(1, int(own or 1), evidence.experiment_trials)


def periods_per_year(params: dict[str, str]) -> float:
    """Return the bars per year the run annualised with: its ``periods_per_year`` parameter,
    else that of its ``timeframe`` parameter, else daily; to turn its annualised Sharpe back
    into a per-bar one."""
    from prism.backtest.metrics import PERIODS_PER_YEAR

    for name in ("periods_per_year", "notebook.periods_per_year"):
        if params.get(name):
            try:
                return float(params[name])
            except ValueError as err:
                raise ConfigError(f"the run's {name} parameter is not a number") from err
    timeframe = params.get("timeframe") or params.get("notebook.timeframe") or "1d"
    return PERIODS_PER_YEAR.get(timeframe, 252)


def deflated_oos_sharpe(evidence: RunEvidence) -> tuple[float | None, str]:
    """Return the deflated Sharpe ratio of the run's out-of-sample segment and how it was
    computed, or None and the missing metrics.

    The Sharpe variance across trials is the sweep's own (``oos_sharpe_variance``) when the run
    came from one; otherwise that of Sharpe estimates of skill-less strategies over the
    segment, 1/T (Lo, 2002), which is what the expected best of N lucky tries is built on.
    """
    needed = ("oos_sharpe", "oos_skew", "oos_kurtosis", "oos_n_periods")
    values = {name: _number(evidence.metrics, name) for name in needed}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        return None, f"{NOT_RECORDED}: {', '.join(missing)}"
    per_year = periods_per_year(evidence.params)
    n_obs = int(values["oos_n_periods"] or 0)
    if n_obs < 2:
        return None, f"oos_n_periods is {n_obs}: too short to judge"
    from prism.backtest.validation import deflated_sharpe_ratio
    from prism.research.tracking import SHARPE_VARIANCE_METRIC

    n_trials = trials(evidence)
    swept = _number(evidence.metrics, SHARPE_VARIANCE_METRIC)
    if swept is not None and swept > 0:
        variance, source = swept / per_year, "the sweep's Sharpe variance"
    else:
        variance, source = 1.0 / n_obs, "Sharpe variance 1/T of skill-less trials"
    value = deflated_sharpe_ratio(
        sharpe=float(values["oos_sharpe"] or 0.0) / math.sqrt(per_year),
        n_obs=n_obs,
        skew=float(values["oos_skew"] or 0.0),
        kurtosis=float(values["oos_kurtosis"] or 0.0),
        sharpe_variance=variance,
        n_trials=n_trials,
    )
    if math.isnan(value):
        return None, "the deflated Sharpe ratio is undefined for these moments"
    failed = (
        f"; {evidence.failed_trials} failed run(s) not counted" if evidence.failed_trials else ""
    )
    return value, f"{n_trials} trial{'s' if n_trials != 1 else ''}, T={n_obs}, {source}{failed}"


RECOMPUTED = (
    "sharpe",
    "max_drawdown",
    "n_trades",
    "oos_sharpe",
    "oos_max_drawdown",
    "oos_n_trades",
    "oos_skew",
    "oos_kurtosis",
    "oos_n_periods",
)
"""The metrics recomputed from a run's logged equity and trades (the gates read among these)."""


def _judged_metrics(evidence: RunEvidence) -> dict[str, float]:
    logged = {k: v for k, v in evidence.metrics.items() if k not in RECOMPUTED}
    return {**logged, **evidence.recomputed.metrics}


def _evidence_gates(recomputed: Recomputed) -> list[GateResult]:
    problems = "; ".join(recomputed.problems)
    results = [
        GateResult(
            "evidence",
            "model, bars, equity",
            "recomputed",
            "recomputed" if not recomputed.problems else "-",
            not recomputed.problems,
            problems,
        )
    ]
    if recomputed.mismatches:
        for m in recomputed.mismatches:
            results.append(
                GateResult(
                    "logged metric",
                    m.metric,
                    f"= {_format(m.recomputed)}",
                    "-" if m.logged is None else _format(m.logged),
                    False,
                    f"the run logged {m.metric} "
                    + ("nothing" if m.logged is None else repr(m.logged))
                    + f" but its equity and trades give {m.recomputed!r}",
                )
            )
    elif not recomputed.problems:
        results.append(
            GateResult("logged metrics", ", ".join(RECOMPUTED), "= recomputed", "equal", True)
        )
    return results


def _check_result(name: str, outcome: bool | None, detail: str) -> GateResult:
    if outcome is None:
        return GateResult(name, "re-run at promotion", "passed", "-", False, "not run")
    return GateResult(
        name, "re-run at promotion", "passed", "passed" if outcome else "failed", outcome, detail
    )


def _waivable(name: str, reads: str, problem: str, waived: bool, reason: str) -> GateResult:
    if not problem:
        return GateResult(name, reads, "none", "none", True)
    if waived:
        return GateResult(
            name, reads, "none", "overridden", True, f"{problem}; overridden: {reason}"
        )
    return GateResult(name, reads, "none", "found", False, problem)


def evaluate(
    evidence: RunEvidence, gates: GateSettings, overrides: Overrides | None = None
) -> list[GateResult]:
    """Return every gate's verdict on a run, judged on its recomputed evidence."""
    waive = overrides or Overrides()
    recomputed = evidence.recomputed
    metrics = _judged_metrics(evidence)
    judged = replace(evidence, metrics=metrics)
    results = _evidence_gates(recomputed)
    results += [
        _threshold_gate("out-of-sample Sharpe", "oos_sharpe", metrics, gates.min_sharpe, True),
        _threshold_gate("max drawdown", "max_drawdown", metrics, gates.max_drawdown, False),
        _threshold_gate("trades", "n_trades", metrics, float(gates.min_trades), True),
    ]
    required = f">= {_format(gates.min_deflated_sharpe)}"
    dsr, how = deflated_oos_sharpe(judged)
    if dsr is None:
        results.append(GateResult("deflated Sharpe", "oos_*", required, "-", False, how))
    else:
        results.append(
            GateResult(
                "deflated Sharpe",
                "oos_*",
                required,
                _format(dsr),
                dsr >= gates.min_deflated_sharpe,
                how,
            )
        )
    if gates.require_lookahead_check:
        violations = recomputed.lookahead
        passed = None if violations is None else not violations
        detail = (
            "" if not violations else f"{len(violations)} weight(s) changed when history was cut"
        )
        results.append(_check_result("look-ahead check", passed, detail))
    if gates.require_parity_check:
        detail = (
            "" if recomputed.parity is not False else "bar-by-bar run differs from the backtest"
        )
        results.append(_check_result("parity check", recomputed.parity, detail))
    dirty = {
        "false": "",
        "true": "the run was made from a tree with uncommitted changes",
    }.get(recomputed.git_dirty, "the run records no git state (git_dirty)")
    if dirty:
        dirty += "; commit and re-run, or pass --allow-dirty with --override-reason"
    results.append(_waivable("clean tree", "git_dirty", dirty, waive.dirty_tree, waive.reason))
    gaps = []
    if recomputed.allow_gaps:
        gaps.append("the run set allow_gaps")
    if recomputed.gaps:
        gaps.append("open gaps in its bars: " + ", ".join(recomputed.gaps[:5]))
    gap_problem = "; ".join(gaps)
    if gap_problem:
        gap_problem += "; backfill and re-run, or pass --allow-gaps with --override-reason"
    results.append(
        _waivable(
            "data gaps", "allow_gaps, stored bars", gap_problem, waive.data_gaps, waive.reason
        )
    )
    return results
