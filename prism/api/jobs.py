"""Background jobs of the API: a backtest too large for a request, a notebook run, a sweep.

Each job is a row of ``config.api_jobs`` written before it is queued, then run by a worker
thread of the API process that accepted it (``api_job_workers`` at once); the row says
``queued``, ``running``, ``done`` with the result as JSON, or ``failed`` with the error (also
"cancelled by …" for a queued job cancelled: a worker starts a job only if it is still queued).
Jobs live in that process: they do not move to another one and are not retried. An API process
that stops with jobs unfinished leaves rows naming its host and pid; :meth:`JobRunner.recover`
(run when the next API process on the host starts) marks those of dead processes ``failed`` with
the reason, so a job is never lost silently.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, text

from prism.api.models import finite
from prism.core.errors import PrismError

Work = Callable[[], dict[str, Any]]

ABANDONED = "the API process that ran this job stopped before it finished; submit it again"

_COLUMNS = (
    "job_id, kind, request, status, result, error, submitted_by, created_at, started_at, "
    "finished_at"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """Queue jobs into ``config.api_jobs`` and run them on a thread pool."""

    def __init__(self, engine: Engine, workers: int) -> None:
        """``engine`` must be able to write ``config.api_jobs`` (the owner's login)."""
        self.engine = engine
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prism-api-job")

    def recover(self) -> int:
        """Mark unfinished jobs of dead API processes on this host ``failed``; return how many."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    "SELECT job_id, pid FROM config.api_jobs "
                    "WHERE status IN ('queued', 'running') AND host = :h"
                ),
                {"h": self.host},
            ).all()
            dead = [r.job_id for r in rows if r.pid != self.pid and not _alive(r.pid)]
            if dead:
                conn.execute(
                    text(
                        "UPDATE config.api_jobs SET status = 'failed', error = :e, "
                        "finished_at = now() WHERE job_id = ANY(:ids)"
                    ),
                    {"e": ABANDONED, "ids": dead},
                )
        return len(dead)

    def submit(self, kind: str, request: dict[str, Any], subject: str, work: Work) -> str:
        """Record a job and queue ``work``; return its id."""
        job_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO config.api_jobs (job_id, kind, request, submitted_by, host, pid) "
                    "VALUES (:id, :kind, CAST(:request AS jsonb), :by, :host, :pid)"
                ),
                {
                    "id": job_id,
                    "kind": kind,
                    "request": json.dumps(request, default=str),
                    "by": subject,
                    "host": self.host,
                    "pid": self.pid,
                },
            )
        self.pool.submit(self._run, job_id, work)
        return job_id

    def cancel(self, job_id: str, subject: str) -> bool:
        """Mark queued job ``job_id`` failed as cancelled by ``subject``, so that it never
        starts; return False if it is no longer queued (running, done or failed)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                text(
                    "UPDATE config.api_jobs SET status = 'failed', error = :e, "
                    "finished_at = now() WHERE job_id = :id AND status = 'queued'"
                ),
                {"id": job_id, "e": f"cancelled by {subject} before it started"},
            ).rowcount
        return bool(done)

    def _run(self, job_id: str, work: Work) -> None:
        with self.engine.begin() as conn:
            claimed = conn.execute(
                text(
                    "UPDATE config.api_jobs SET status = 'running', started_at = now() "
                    "WHERE job_id = :id AND status = 'queued'"
                ),
                {"id": job_id},
            ).rowcount
        if not claimed:
            return
        try:
            result = work()
        except PrismError as err:
            self._fail(job_id, str(err))
        except Exception as err:
            self._fail(job_id, f"{type(err).__name__}: {err}")
        else:
            self._set(
                job_id,
                "status = 'done', result = CAST(:r AS jsonb), finished_at = now()",
                {"r": json.dumps(finite(result), default=str, allow_nan=False)},
            )

    def _fail(self, job_id: str, error: str) -> None:
        self._set(job_id, "status = 'failed', error = :e, finished_at = now()", {"e": error[:4000]})

    def _set(self, job_id: str, assignments: str, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE config.api_jobs SET {assignments} WHERE job_id = :id"),
                {**values, "id": job_id},
            )

    def get(self, job_id: str) -> dict[str, Any] | None:
        """Return job ``job_id`` as a dict, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_COLUMNS} FROM config.api_jobs WHERE job_id = :id"),
                {"id": job_id},
            ).one_or_none()
        return dict(row._mapping) if row is not None else None

    def recent(self, limit: int, subject: str | None = None) -> list[dict[str, Any]]:
        """Return the newest jobs (of ``subject`` only, when given), newest first."""
        where = "WHERE submitted_by = :s" if subject is not None else ""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM config.api_jobs {where} "
                    "ORDER BY created_at DESC, job_id LIMIT :n"
                ),
                {"s": subject, "n": limit},
            ).all()
        return [dict(r._mapping) for r in rows]

    def shutdown(self) -> None:
        """Stop taking jobs: queued ones are cancelled and marked failed; running ones are
        left to finish if the process lives on (else :meth:`recover` fails them later)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE config.api_jobs SET status = 'failed', error = :e, finished_at = now() "
                    "WHERE status = 'queued' AND host = :h AND pid = :p"
                ),
                {"e": ABANDONED, "h": self.host, "p": self.pid},
            )
