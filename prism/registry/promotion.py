"""The model registry: promotion through the gates, aliases and rollback.

A promotion recomputes the run's evidence from its model, its logged equity and trades and the
stored bars (:mod:`prism.registry.evidence`) and :mod:`prism.registry.gates` judges it. The
approver is the authenticated identity (:func:`approver`: the OS user). If every gate passes,
the run's model is registered (once; promoting the same run again reuses its version), the
alias asked for (``challenger`` or ``champion``) points at it, and the approval (who, when, why,
the gate results, the gates file's version and hash) is written to MLflow's model version tags
and to ``models.approvals`` and the ``models.versions`` mirror. If any gate fails, MLflow's
registry and the mirror stay exactly as they were; the refusal is kept in ``models.approvals``.

``rollback`` moves ``champion`` back to the version it pointed at before the current one (read
from the approvals history) and records that too. The runner resolves the alias every cycle
(:func:`prism.registry.versions.champion`), so moving an alias is how a model goes live or is
withdrawn.

About 500 lines: promotion and rollback share the approval record and the registry mirror they
both write; reading versions lives apart in :mod:`prism.registry.versions`.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import Connection, Engine, text

from prism.core.errors import ConfigError
from prism.core.settings import GateSettings, Settings
from prism.db.engine import open_database
from prism.registry.evidence import recompute
from prism.registry.gates import (
    GateResult,
    GatesFile,
    Overrides,
    Recomputed,
    RunEvidence,
    evaluate,
    load_gates_file,
)
from prism.registry.versions import CHAMPION
from prism.research.tracking import (
    MODEL_URI_TAG,
    PARENT_TAG,
    SWEEP_TAG,
    TRIALS_METRIC,
    mlflow_client,
)

CHALLENGER = "challenger"
ALIASES = (CHALLENGER, CHAMPION)


@dataclass(frozen=True)
class Promotion:
    """The outcome of ``prism models promote``."""

    run_id: str
    model_name: str
    alias: str
    gates: list[GateResult]
    version: str | None
    gates_record: dict[str, Any] = field(default_factory=dict)
    recomputed: Recomputed = field(default_factory=Recomputed)

    @property
    def code_sha256(self) -> str:
        """Return the hash of the strategy code the judged model carries."""
        return self.recomputed.code_sha256

    @property
    def promoted(self) -> bool:
        """Return whether every gate passed and the alias was set."""
        return self.version is not None

    def failed(self) -> list[GateResult]:
        """Return the gates that did not pass."""
        return [gate for gate in self.gates if not gate.passed]


def _engine(settings: Settings, engine: Engine | None) -> Engine:
    if engine is not None:
        return engine

    return open_database(settings)


def _gates(settings: Settings, gates: GatesFile | GateSettings | None) -> GatesFile | GateSettings:
    return load_gates_file(settings.gates_file) if gates is None else gates


def _gates_record(gates: GatesFile | GateSettings) -> dict[str, Any]:
    if isinstance(gates, GatesFile):
        return gates.record()
    return {"file": None, "version": None, "sha256": None, "overrides": []}


def _thresholds(gates: GatesFile | GateSettings) -> GateSettings:
    return gates.thresholds if isinstance(gates, GatesFile) else gates


def experiment_trials(client: MlflowClient, experiment_id: str) -> tuple[int, int]:
    """Return the finished trials an experiment holds and, apart, its failed or killed runs.

    Each finished run counts once, a finished sweep's parent counts its whole grid
    (``trials``), and a sweep's kept children are already in that count. Runs still running are
    in neither number.
    """
    total = finished = failed = 0
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=5000, page_token=token
        )
        for run in page:
            if run.info.status in ("FAILED", "KILLED"):
                failed += 1
                continue
            if run.info.status != "FINISHED":
                continue
            finished += 1
            if PARENT_TAG not in run.data.tags:
                total += max(1, int(run.data.metrics.get(TRIALS_METRIC, 1) or 1))
        token = page.token
        if not token:
            return max(total, finished), failed


def approver() -> str:
    """Return the authenticated identity that approves: the OS user running the command."""
    return getpass.getuser()


def run_evidence(
    client: MlflowClient, run_id: str, settings: Settings, engine: Engine | None = None
) -> RunEvidence:
    """Return what run ``run_id`` recorded, its evidence recomputed against the stored bars of
    ``engine`` (when given) and its experiment's trial count."""
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ConfigError(
            f"no MLflow run with id {run_id!r} in {settings.mlflow_tracking_uri}; "
            "`prism research run` prints the id of each run it makes"
        ) from err
    trial_count, failed = experiment_trials(client, run.info.experiment_id)
    return RunEvidence(
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        experiment_trials=trial_count,
        failed_trials=failed,
        recomputed=Recomputed() if engine is None else recompute(client, run_id, engine),
    )


def check(
    settings: Settings,
    run_id: str,
    gates: GatesFile | GateSettings | None = None,
    engine: Engine | None = None,
    overrides: Overrides | None = None,
) -> list[GateResult]:
    """Return the gates' verdicts on ``run_id`` without changing anything."""
    client = mlflow_client(settings)
    evidence = run_evidence(client, run_id, settings, _engine(settings, engine))
    return evaluate(evidence, _thresholds(_gates(settings, gates)), overrides)


def promote(
    settings: Settings,
    run_id: str,
    gates: GatesFile | GateSettings | None = None,
    approved_by: str = "unknown",
    alias: str = CHAMPION,
    reason: str = "",
    engine: Engine | None = None,
    overrides: Overrides | None = None,
) -> Promotion:
    """Register ``run_id``'s model and point ``alias`` at it if every gate passes on the
    evidence recomputed from the run's model and artifacts and the stored bars.

    ``gates`` defaults to the settings' gates file; ``approved_by`` is the authenticated
    identity (the CLI passes :func:`approver`); ``overrides`` waives the clean-tree or data-gaps
    gate with a reason. On a refusal nothing in MLflow or in ``models.versions`` changes; the
    refusal is recorded in ``models.approvals``.
    """
    if alias not in ALIASES:
        raise ConfigError(f"alias {alias!r} is not one of {', '.join(ALIASES)}")
    waive = overrides or Overrides()
    waive.check()
    client = mlflow_client(settings)
    gates = _gates(settings, gates)
    record = _gates_record(gates)
    database = _engine(settings, engine)
    _refuse_unpromotable(client, run_id, settings)
    evidence = run_evidence(client, run_id, settings, database)
    results = evaluate(evidence, _thresholds(gates), waive)
    name = settings.model_name
    code = evidence.recomputed.code_sha256
    entry = Entry(
        name,
        None,
        alias,
        "refuse",
        run_id,
        None,
        approved_by,
        reason,
        results,
        record,
        code_sha256=code,
        waived=tuple(waive.names()),
        waiver_reason=waive.reason,
    )
    if not all(gate.passed for gate in results):
        with database.begin() as conn:
            _record_approval(conn, entry)
        return Promotion(run_id, name, alias, results, None, record, evidence.recomputed)
    model_uri = evidence.tags.get(MODEL_URI_TAG)
    if model_uri is None:
        raise ConfigError(
            f"run {run_id} logged no strategy model; promote a run of a backtest notebook "
            "(it logs the strategy with prism.research.tracking.log_backtest)"
        )
    version = _existing_version(client, name, run_id)
    if version is None:
        with contextlib.redirect_stderr(io.StringIO()):
            registered = mlflow.register_model(model_uri, name)
        version = str(registered.version)
    entry = replace(
        entry, version=version, action="promote", previous=_alias_version(client, name, alias)
    )
    for key, value in entry.version_tags().items():
        client.set_model_version_tag(name, version, key, value)
    with database.begin() as conn:
        _record_approval(conn, entry)
        _mirror(conn, entry)
        client.set_registered_model_alias(name, alias, version)
        if alias == CHAMPION and _alias_version(client, name, CHALLENGER) == version:
            client.delete_registered_model_alias(name, CHALLENGER)
    return Promotion(run_id, name, alias, results, version, record, evidence.recomputed)


def _refuse_unpromotable(client: MlflowClient, run_id: str, settings: Settings) -> None:
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ConfigError(
            f"no MLflow run with id {run_id!r} in {settings.mlflow_tracking_uri}; "
            "`prism research run` prints the id of each run it makes"
        ) from err
    status = run.info.status
    if status != "FINISHED":
        state = "failed" if status == "FAILED" else "did not finish"
        raise ConfigError(
            f"run {run_id} {state} (MLflow status {status}): its metrics and model are not "
            "evidence; fix the notebook and promote a run that finished "
            "(`prism research run` prints its id)"
        )
    if run.data.tags.get(SWEEP_TAG) == "parent":
        raise ConfigError(
            f"run {run_id} is a sweep's parent (it holds the grid's table, not a model); "
            "promote one of its child runs, which `prism research sweep` prints"
        )


def _existing_version(client: MlflowClient, name: str, run_id: str) -> str | None:
    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return str(versions[0].version) if versions else None


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Entry:
    """One decision about the registry, as ``models.approvals`` keeps it."""

    model_name: str
    version: str | None
    alias: str
    action: str
    run_id: str | None
    previous: str | None
    by: str
    reason: str
    results: list[GateResult] = field(default_factory=list)
    gates: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    code_sha256: str = ""
    waived: tuple[str, ...] = ()
    waiver_reason: str = ""

    def gate_json(self) -> str:
        """Return the gate results as compact JSON."""
        return json.dumps([asdict(g) for g in self.results], separators=(",", ":"))

    def version_tags(self) -> dict[str, str]:
        """Return the approval as MLflow model version tags."""
        return {
            "approved_by": self.by,
            "approved_at": self.at.isoformat(timespec="seconds"),
            "approval_alias": self.alias,
            "approval_reason": self.reason,
            "gate_results": self.gate_json(),
            "gates_file": str(self.gates.get("file")),
            "gates_version": str(self.gates.get("version")),
            "gates_sha256": str(self.gates.get("sha256")),
            "gates_overrides": ",".join(self.gates.get("overrides") or []),
            "code_sha256": self.code_sha256,
            "waived_gates": ",".join(self.waived),
            "waiver_reason": self.waiver_reason,
        }


def _record_approval(conn: Connection, entry: Entry) -> None:
    conn.execute(
        text(
            "INSERT INTO models.approvals (model_name, version, alias, action, mlflow_run_id, "
            "previous_version, decided_by, decided_at, reason, gate_results, gates_file, "
            "gates_version, gates_sha256, gates_overrides, code_sha256, waived, waiver_reason) "
            "VALUES (:m, :v, :a, :action, :run, :prev, :by, :at, :reason, CAST(:gates AS jsonb), "
            ":file, :gv, :sha, :overrides, :code, :waived, :why)"
        ),
        {
            "m": entry.model_name,
            "v": entry.version,
            "a": entry.alias,
            "action": entry.action,
            "run": entry.run_id,
            "prev": entry.previous,
            "by": entry.by,
            "at": entry.at,
            "reason": entry.reason,
            "gates": entry.gate_json(),
            "file": entry.gates.get("file"),
            "gv": entry.gates.get("version"),
            "sha": entry.gates.get("sha256"),
            "overrides": list(entry.gates.get("overrides") or []),
            "code": entry.code_sha256 or None,
            "waived": list(entry.waived),
            "why": entry.waiver_reason,
        },
    )


def _move_alias_in_mirror(conn: Connection, name: str, version: str, alias: str) -> None:
    conn.execute(
        text(
            "UPDATE models.versions SET alias = NULL "
            "WHERE model_name = :m AND (alias = :a OR version = :v)"
        ),
        {"m": name, "a": alias, "v": version},
    )


def _mirror(conn: Connection, entry: Entry) -> None:
    assert entry.version is not None and entry.run_id is not None
    _move_alias_in_mirror(conn, entry.model_name, entry.version, entry.alias)
    conn.execute(
        text(
            "INSERT INTO models.versions (model_name, version, alias, mlflow_run_id, approved_by, "
            "approved_at, gate_results, reason, gates_version, gates_sha256, code_sha256) VALUES "
            "(:m, :v, :a, :run, :by, :at, CAST(:gates AS jsonb), :reason, :gv, :sha, :code) "
            "ON CONFLICT (model_name, version) DO UPDATE SET alias = EXCLUDED.alias, "
            "approved_by = EXCLUDED.approved_by, approved_at = EXCLUDED.approved_at, "
            "gate_results = EXCLUDED.gate_results, reason = EXCLUDED.reason, "
            "gates_version = EXCLUDED.gates_version, gates_sha256 = EXCLUDED.gates_sha256, "
            "code_sha256 = EXCLUDED.code_sha256"
        ),
        {
            "m": entry.model_name,
            "v": entry.version,
            "a": entry.alias,
            "run": entry.run_id,
            "by": entry.by,
            "at": entry.at,
            "gates": entry.gate_json(),
            "reason": entry.reason,
            "gv": entry.gates.get("version"),
            "sha": entry.gates.get("sha256"),
            "code": entry.code_sha256 or None,
        },
    )


@dataclass(frozen=True)
class Approval:
    """One row of the registry's history (``models.approvals``)."""

    decided_at: datetime
    action: str
    alias: str
    version: str | None
    previous_version: str | None
    run_id: str | None
    decided_by: str
    reason: str
    gates_version: int | None
    gates_sha256: str | None
    gate_results: list[dict[str, Any]]


def history(engine: Engine, model_name: str, version: str | None = None) -> list[Approval]:
    """Return the approvals of ``model_name`` (of one ``version`` when given), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT decided_at, action, alias, version, previous_version, mlflow_run_id, "
                "decided_by, reason, gates_version, gates_sha256, gate_results "
                "FROM models.approvals WHERE model_name = :m "
                "AND (CAST(:v AS text) IS NULL OR version = :v) ORDER BY decided_at, id"
            ),
            {"m": model_name, "v": version},
        ).all()
    return [Approval(*row) for row in rows]


def previous_champion(engine: Engine, model_name: str, alias: str = CHAMPION) -> str | None:
    """Return the version ``alias`` pointed at before its current one, from the history:
    each promotion stacks a version; a rollback to the version under the top takes the top off,
    and a rollback to any other version (``--to``) stacks it like a promotion."""
    stack: list[str] = []
    for approval in history(engine, model_name):
        if approval.alias != alias or approval.version is None:
            continue
        if approval.action == "rollback" and stack[-2:-1] == [approval.version]:
            stack.pop()
        elif approval.action in ("promote", "rollback") and stack[-1:] != [approval.version]:
            stack.append(approval.version)
    return stack[-2] if len(stack) >= 2 else None


@dataclass(frozen=True)
class Rollback:
    """The outcome of ``prism models rollback``."""

    model_name: str
    alias: str
    from_version: str | None
    to_version: str


def rollback(
    settings: Settings,
    by: str,
    reason: str = "",
    to: str | None = None,
    alias: str = CHAMPION,
    engine: Engine | None = None,
) -> Rollback:
    """Point ``alias`` back at the version it held before (or at ``to``) and record it."""
    client = mlflow_client(settings)
    database = _engine(settings, engine)
    name = settings.model_name
    current = _alias_version(client, name, alias)
    target = to or previous_champion(database, name, alias)
    if target is None:
        raise ConfigError(
            f"model {name!r} has no earlier {alias} to roll back to (the history in "
            "models.approvals holds none); name one with --to VERSION"
        )
    try:
        run_id = str(client.get_model_version(name, target).run_id)
    except MlflowException as err:
        raise ConfigError(
            f"model {name!r} has no version {target}; `prism models list` shows the versions"
        ) from err
    at = datetime.now(UTC)
    with database.begin() as conn:
        _record_approval(
            conn, Entry(name, target, alias, "rollback", run_id, current, by, reason, at=at)
        )
        _move_alias_in_mirror(conn, name, target, alias)
        conn.execute(
            text(
                "INSERT INTO models.versions (model_name, version, alias, mlflow_run_id) "
                "VALUES (:m, :v, :a, :run) ON CONFLICT (model_name, version) "
                "DO UPDATE SET alias = EXCLUDED.alias"
            ),
            {"m": name, "v": target, "a": alias, "run": run_id},
        )
        for key, value in {
            "rolled_back_at": at.isoformat(timespec="seconds"),
            "rolled_back_by": by,
            "rolled_back_from": str(current),
            "rollback_reason": reason,
        }.items():
            client.set_model_version_tag(name, target, key, value)
        client.set_registered_model_alias(name, alias, target)
    return Rollback(name, alias, current, target)
