"""The API's request and response bodies (Pydantic), and turning frames into JSON rows."""

from __future__ import annotations

import json
import math
from datetime import datetime
from http import HTTPStatus
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

Row = dict[str, Any]


def records(frame: pd.DataFrame) -> list[Row]:
    """Return a frame's rows as JSON-ready dicts: times as ISO 8601 UTC, NaN as null."""
    rows: list[Row] = json.loads(
        frame.to_json(orient="records", date_format="iso", double_precision=15)
    )
    return rows


def finite(value: Any) -> Any:
    """Return ``value`` with NaN and infinities (which JSON has no word for) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class Problem(BaseModel):
    """An error (RFC 9457 problem details); a 422 also lists each invalid field in ``errors``."""

    type: str
    title: str
    status: int
    detail: str
    instance: str = ""
    errors: list[dict[str, Any]] | None = None


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI error responses ``codes`` of a route, each a :class:`Problem`."""
    return {code: {"model": Problem, "description": HTTPStatus(code).phrase} for code in codes}


class Token(BaseModel):
    """An access token (OAuth2 bearer)."""

    access_token: str
    token_type: str = "bearer"
    expires_at: int = Field(description="Unix seconds")
    role: str


class ApiKeyLogin(BaseModel):
    """A long-lived API key exchanged for an access token."""

    api_key: str = Field(min_length=8, max_length=200)


class Me(BaseModel):
    """Who the token belongs to."""

    subject: str
    role: str
    credential: str
    expires_at: int


class NewUser(BaseModel):
    """A user to create."""

    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password: str = Field(min_length=12, max_length=200)
    role: str


class NewKeyRequest(BaseModel):
    """An API key to create."""

    name: str = Field(min_length=1, max_length=100)
    role: str
    days: float | None = Field(None, gt=0)


class CreatedKey(BaseModel):
    """A created key: ``api_key`` is shown this once."""

    key_id: str
    api_key: str
    role: str
    expires_at: datetime | None


class BarsPage(BaseModel):
    """One page of bars, oldest first, and the cursor of the next page (null: last page)."""

    symbol: str
    timeframe: str
    bars: list[Row]
    next_cursor: datetime | None


class BacktestRequest(BaseModel):
    """A small backtest run in the request (no MLflow run)."""

    strategy: str
    symbols: list[str] = Field(min_length=1, max_length=50)
    timeframe: str = "1d"
    start: datetime | None = None
    end: datetime | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    cash: float = Field(1_000_000.0, gt=0)
    commission_bps: float = Field(1.0, ge=0)
    slippage_bps: float = Field(2.0, ge=0)
    allow_gaps: bool = False


class BacktestResult(BaseModel):
    """A backtest's metrics."""

    strategy: str
    symbols: list[str]
    bars: int
    metrics: dict[str, float]


class PromoteRequest(BaseModel):
    """Promote an MLflow run's model through the gates (the approver is the caller)."""

    run_id: str = Field(min_length=1)
    alias: str = Field("champion", pattern="^(challenger|champion)$")
    reason: str = ""
    allow_dirty: bool = False
    allow_gaps: bool = False
    override_reason: str = ""


class GateOutcome(BaseModel):
    """One gate's result."""

    gate: str
    metric: str
    required: str
    actual: str
    passed: bool
    note: str = ""


class PromoteResult(BaseModel):
    """What a promotion did: the gates and, when they passed, the version and alias."""

    promoted: bool
    model_name: str
    version: str | None
    alias: str
    gates: list[GateOutcome]


class RollbackRequest(BaseModel):
    """Move ``champion`` back (to ``to``, default the previous version)."""

    reason: str = ""
    to: str | None = None


class RollbackResult(BaseModel):
    """What a rollback did."""

    model_name: str
    alias: str
    from_version: str | None
    to_version: str


class HaltRequest(BaseModel):
    """Halt a deployment (optionally closing its positions)."""

    reason: str = Field("kill switch", min_length=1, max_length=500)
    flatten: bool = False


class Done(BaseModel):
    """A state change's outcome."""

    deployment: str
    changed: bool
    detail: str


class LimitChange(BaseModel):
    """A new value for one risk limit, globally or for one deployment."""

    value: float
    deployment: str | None = None


class LimitChanged(BaseModel):
    """A risk limit's new and previous value."""

    key: str
    deployment: str | None
    value: float
    previous: float


class IngestResult(BaseModel):
    """What an upload's ingestion did (``prism data ingest``'s report) and the rows it
    quarantined, each with the rule that refused it."""

    source: str
    received: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    flagged: int
    rejects: list[Row]


class Series(BaseModel):
    """One symbol's rows over a range (indicators or point-in-time features), oldest first."""

    symbol: str
    timeframe: str
    columns: list[str]
    rows: list[Row]


class JobAccepted(BaseModel):
    """A queued background job: poll ``href`` for its status and result."""

    job_id: str
    kind: str
    status: str
    href: str


class Job(BaseModel):
    """A background job: ``queued``, ``running``, ``done`` (``result``) or ``failed``
    (``error``)."""

    job_id: str
    kind: str
    status: str
    request: Row
    result: Row | None
    error: str | None
    submitted_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class NotebookRunRequest(BaseModel):
    """A notebook of the API's notebook folder run with papermill as one MLflow run;
    ``parameters`` as ``prism research run -p NAME VALUE`` takes them (typed by the notebook's
    defaults)."""

    notebook: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}\.ipynb$")
    parameters: dict[str, str] = Field(default_factory=dict)


class NotebookSweepRequest(BaseModel):
    """A notebook run over a grid (``prism research sweep``): axes ``name=v1,v2`` or
    ``name=start..stop[:step]``."""

    notebook: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}\.ipynb$")
    grid: list[str] = Field(min_length=1, max_length=10)
    parameters: dict[str, str] = Field(default_factory=dict)
    workers: int | None = Field(None, ge=1, le=32)
    keep: int = Field(3, ge=0, le=100)
    metric: str = "oos_sharpe"


class SweepRequest(BacktestRequest):
    """A backtest sweep (``prism sweep``): the backtest of :class:`BacktestRequest` over every
    combination of ``grid`` (axes ``name=v1,v2`` or ``name=start..stop[:step]``) kept by every
    ``where`` (``fast<slow``), ``params`` fixing the parameters the grid does not name."""

    grid: list[str] = Field(min_length=1, max_length=10)
    where: list[str] = Field(default_factory=list)
    top: int = Field(10, ge=1, le=1000)


class NewDeployment(BaseModel):
    """A deployment to create (``prism runner deployments add``)."""

    name: str = Field(min_length=1, max_length=100)
    symbols: list[str] = Field(min_length=1, max_length=200)
    capital: float
    timeframe: str = "1d"
    alias: str = "champion"
    model: str | None = None
    enabled: bool = True
    broker: str = "paper"
    account: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class CheckOutcome(BaseModel):
    """One dependency's readiness."""

    name: str
    ok: bool
    reason: str
    seconds: float


class Readiness(BaseModel):
    """Every dependency's readiness; ``status`` is ``ok`` only when all are."""

    status: str
    checks: list[CheckOutcome]
