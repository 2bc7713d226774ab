"""Hourly and daily rollups of 1-minute bars, and the compression and retention of bars.

The rollups ``market_data.ohlcv_1h`` and ``market_data.ohlcv_1d`` (first open, max high,
min low, last close, summed volume, and the number of 1m bars in the bucket) are created by
migration 0005 in the mode recorded for the database. They are a hierarchy (migration 0020):
the hourly rollup is computed from the 1m bars and the daily one from the hourly rollup (first
hourly open, max high, min low, last hourly close, summed volume and bar counts), which gives the
same values as from the 1m bars while reading 24 rows a day instead of 1,440.

- TimescaleDB: continuous aggregates with refresh policies. :func:`refresh_rollups` refreshes
  them at once as well, so a bar ingested a moment ago shows up without waiting for the job,
  when the connected user may (only an aggregate's owner may refresh it: the runner's login
  ``prism_runner`` may not, and its ingests rely on the policy and on real-time aggregation).
  :func:`apply_policies` installs compression and retention per timeframe from the settings
  (``PRISM_COMPRESS_1M`` ... ``PRISM_RETENTION_1D``); run it through ``prism db retention``
  after changing them.
- Plain PostgreSQL: tables (migration 0009) that :func:`refresh_rollups`, called by
  :func:`prism.data.store.ingest` whenever 1m bars changed, updates for just the buckets those
  bars fall in (an upsert of ``date_bin`` aggregates), so the cost follows the size of the
  ingest rather than of the history. There are no background jobs, so retention is by
  deletion: ``prism db retention`` runs :func:`apply_retention` (the runner's maintenance flow
  runs it daily). Compression has no plain-PostgreSQL equivalent.

In both modes a bucket outlives the rows it was computed from, so 1h/1d history reaches back
further than 1m retention. A refresh therefore never reaches behind what its source keeps: each
retention run records how far it deleted 1m bars (``retention_cutoff_1m`` in
``config.database_info``, only ever moving forward), and :func:`refresh_rollups` starts the
hourly rollup no earlier than the first whole hour after that cutoff; the daily rollup, no
earlier than the first whole day the hourly rollup still holds (on TimescaleDB its retention
drops whole chunks of it; on plain PostgreSQL :func:`apply_retention` deletes its rows older than
the 1h retention). Without that, a
continuous aggregate refreshed over a range whose source rows are gone deletes those buckets
(and a plain-PostgreSQL upsert shrinks the bucket the cutoff falls in). The TimescaleDB refresh
policies look back less far than their source keeps for the same reason.

:func:`install_timescale_policies` is what migration 0010 runs, so that ``prism db upgrade``
leaves a TimescaleDB database with its compression, retention and refresh jobs installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from prism.core.errors import ConfigError, TransientError
from prism.core.settings import Settings
from prism.db.bars import bars_storage
from prism.db.migrate import database_mode

TIMEFRAMES = ("1m", "5m", "1h", "1d")
ROLLUPS = {"market_data.ohlcv_1h": "1h", "market_data.ohlcv_1d": "1d"}
"""Each rollup view and the timeframe whose compression and retention it follows."""
FOREVER = ("forever", "none", "")


def rollup_of(timeframe: str) -> str:
    """Return the rollup (continuous aggregate on TimescaleDB) holding ``timeframe`` buckets of
    the 1m bars; a ConfigError for a timeframe that has none (1m, 5m)."""
    views = {tf: view for view, tf in ROLLUPS.items()}
    if timeframe not in views:
        raise ConfigError(
            f"no rollup of 1m bars into {timeframe!r} bars; rollups exist for "
            f"{', '.join(views)}: read {timeframe!r} bars from the stored bars instead"
        )
    return views[timeframe]


@dataclass(frozen=True)
class Policy:
    """How long bars of one timeframe stay uncompressed and how long they are kept at all.

    ``None`` means never: no compression, or keep forever.
    """

    timeframe: str
    compress_after: str | None
    keep: str | None


def _interval_or_none(value: str) -> str | None:
    cleaned = value.strip().lower()
    return None if cleaned in FOREVER else cleaned


def configured_policies(settings: Settings) -> list[Policy]:
    """Return the compression and retention the settings ask for, one policy per timeframe."""
    return [
        Policy(
            timeframe,
            _interval_or_none(getattr(settings, f"compress_{timeframe}")),
            _interval_or_none(getattr(settings, f"retention_{timeframe}")),
        )
        for timeframe in TIMEFRAMES
    ]


def check_policies(conn: Connection, policies: list[Policy]) -> None:
    """Raise a ConfigError naming the setting whose value PostgreSQL cannot read as an interval."""
    for policy in policies:
        for kind, value in (("COMPRESS", policy.compress_after), ("RETENTION", policy.keep)):
            if value is None:
                continue
            try:
                with conn.begin_nested():
                    conn.execute(text("SELECT CAST(:v AS interval)"), {"v": value})
            except DBAPIError as err:
                raise ConfigError(
                    f"PRISM_{kind}_{policy.timeframe.upper()}={value!r} is not an interval; "
                    "use e.g. '6 months', '2 years', or 'forever'"
                ) from err


ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
"""Where ``date_bin`` starts counting buckets (any midnight UTC gives the same 1h/1d buckets)."""

INCREMENTAL_ROLLUP = """
INSERT INTO {view} (symbol, time, open, high, low, close, volume, bars)
SELECT symbol, date_bin(CAST(:width AS interval), time, {origin}) AS bucket,
       (array_agg(open ORDER BY time))[1], max(high), min(low),
       (array_agg(close ORDER BY time DESC))[1], sum(volume), {bars}
FROM {source}
WHERE true {where}
GROUP BY 1, 2
ON CONFLICT (symbol, time) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high,
    low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, bars = EXCLUDED.bars
"""

WIDTHS = {"market_data.ohlcv_1h": "1 hour", "market_data.ohlcv_1d": "1 day"}
"""Bucket width of each rollup, in the order they are refreshed (each after its source)."""

SOURCES = {
    "market_data.ohlcv_1h": ("market_data.bars_1m", "count(*)"),
    "market_data.ohlcv_1d": ("market_data.ohlcv_1h", "sum(bars)"),
}
"""What each rollup is computed from, and how its bucket's count of 1m bars is."""

REFRESH_POLICIES = {
    "market_data.ohlcv_1h": ("3 days", "1 hour", "30 minutes"),
    "market_data.ohlcv_1d": ("7 days", "1 day", "1 hour"),
}
"""start_offset, end_offset and schedule_interval of each continuous aggregate's refresh job
(start_offset is shortened to what the source keeps when that is shorter: the 1m retention for
the hourly rollup, the 1h retention for the daily one)."""

REFRESH_JOB = """
SELECT j.job_id FROM timescaledb_information.jobs j
JOIN _timescaledb_catalog.continuous_agg ca
  ON ca.mat_hypertable_id = CAST(j.config ->> 'mat_hypertable_id' AS integer)
WHERE format('%s.%s', ca.user_view_schema, ca.user_view_name) = :view
  AND j.proc_name = 'policy_refresh_continuous_aggregate'
"""
"""The refresh job of the continuous aggregate ``:view`` (``market_data.ohlcv_1d``)."""

CUTOFF_KEY = "retention_cutoff_{timeframe}"
"""Key in ``config.database_info``: bars of the timeframe older than this were deleted."""

RECORD_CUTOFF = """
INSERT INTO config.database_info AS info (key, value)
VALUES (:key, CAST(CAST(:cutoff AS timestamptz) AS text))
ON CONFLICT (key) DO UPDATE SET value = CASE
    WHEN CAST(EXCLUDED.value AS timestamptz) > CAST(info.value AS timestamptz)
    THEN EXCLUDED.value ELSE info.value END
"""


def retention_cutoff(conn: Connection, timeframe: str = "1m") -> datetime | None:
    """Return the time before which retention has deleted ``timeframe`` bars, if it ever ran."""
    value = conn.execute(
        text("SELECT CAST(value AS timestamptz) FROM config.database_info WHERE key = :key"),
        {"key": CUTOFF_KEY.format(timeframe=timeframe)},
    ).scalar()
    return value if isinstance(value, datetime) else None


def source_floor(conn: Connection, view: str, mode: str) -> datetime | None:
    """Return the time before which ``view``'s source may have lost rows, if it may have.

    The hourly rollup's source is the 1m bars, deleted up to the recorded 1m retention cutoff.
    The daily rollup's is the hourly rollup: on TimescaleDB its retention drops whole chunks,
    so everything from its first remaining chunk on is whole, and with no chunk left nothing is
    (the floor is now: a refresh could only delete daily buckets); on plain PostgreSQL
    :func:`apply_retention` deletes its rows up to a recorded cutoff.
    """
    source = SOURCES[view][0]
    if source == "market_data.bars_1m":
        return retention_cutoff(conn)
    if mode != "timescaledb":
        return retention_cutoff(conn, _rollup_key(source))
    value = conn.execute(
        text(
            "SELECT coalesce(min(ch.range_start), now()) "
            "FROM timescaledb_information.continuous_aggregates ca "
            "JOIN timescaledb_information.chunks ch "
            "ON ch.hypertable_schema = ca.materialization_hypertable_schema "
            "AND ch.hypertable_name = ca.materialization_hypertable_name "
            "WHERE ca.view_schema || '.' || ca.view_name = :source"
        ),
        {"source": source},
    ).scalar()
    return value if isinstance(value, datetime) else None


def _refresh_start(
    conn: Connection, view: str, mode: str, start: datetime | None
) -> datetime | None:
    """Return where a refresh of ``view`` may start: ``start``, but not before the first whole
    bucket after the time its source may have lost rows before (:func:`source_floor`)."""
    width = WIDTHS[view]
    cutoff = source_floor(conn, view, mode)
    if cutoff is None:
        return start
    first_whole = conn.execute(
        text(
            f"SELECT CASE WHEN date_bin(CAST(:w AS interval), :c, {ORIGIN}) = :c THEN :c "
            f"ELSE date_bin(CAST(:w AS interval), :c, {ORIGIN}) + CAST(:w AS interval) END"
        ),
        {"w": width, "c": cutoff},
    ).scalar_one()
    bucket_start = (
        None
        if start is None
        else conn.execute(
            text(f"SELECT date_bin(CAST(:w AS interval), :s, {ORIGIN})"), {"w": width, "s": start}
        ).scalar_one()
    )
    return first_whole if bucket_start is None or bucket_start < first_whole else start


def _window(symbols: list[str] | None, start: datetime | None, end: datetime | None) -> str:
    """Return the WHERE clause limiting a refresh to the whole buckets holding the changes."""
    clauses = []
    if symbols is not None:
        clauses.append("AND symbol = ANY(:symbols)")
    if start is not None:
        clauses.append(f"AND time >= date_bin(CAST(:width AS interval), :start, {ORIGIN})")
    if end is not None:
        clauses.append(
            f"AND time < date_bin(CAST(:width AS interval), :end, {ORIGIN}) "
            "+ CAST(:width AS interval)"
        )
    return " ".join(clauses)


def _owns_rollups(engine: Engine) -> bool:
    """Return whether the connected user may refresh every continuous aggregate (owns them)."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT bool_and(pg_has_role(current_user, c.relowner, 'USAGE')) "
                    "FROM pg_class c WHERE c.oid = ANY(CAST(:views AS regclass[]))"
                ),
                {"views": list(WIDTHS)},
            ).scalar()
        )


def refresh_rollups(
    engine: Engine,
    symbols: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> None:
    """Bring the 1h and 1d rollups up to date with the 1m bars stored now.

    Only the buckets of ``symbols`` between ``start`` and ``end`` (the bars an ingest just
    changed) are recomputed; without them, every bucket, but never a bucket behind the 1m
    retention cutoff (whose raw bars are gone, see the module's docstring). On TimescaleDB the
    bucket now is in is left unmaterialized: real-time aggregation computes it from the layer
    below on every read, so a bar stored later (by the runner, which may not refresh) shows in
    it at once; the refresh jobs materialize it once it is over. Raises
    :class:`~prism.core.errors.TransientError` naming the rollup that failed; the bars themselves
    are already committed, so running ``prism db refresh`` later repairs it.
    """
    mode = database_mode(engine)
    if mode == "timescaledb" and not _owns_rollups(engine):
        return
    for view, width in WIDTHS.items():
        with engine.connect() as conn:
            window_start = _refresh_start(conn, view, mode, start)
        if window_start is not None and end is not None and window_start > end:
            continue
        try:
            if mode == "timescaledb":
                autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                with autocommit as conn:
                    low, high = conn.execute(
                        text(
                            f"SELECT date_bin(CAST(:width AS interval), :start, {ORIGIN}), "
                            f"LEAST(date_bin(CAST(:width AS interval), :end, {ORIGIN}) "
                            f"+ CAST(:width AS interval), "
                            f"date_bin(CAST(:width AS interval), now(), {ORIGIN}))"
                        ),
                        {"width": width, "start": window_start, "end": end},
                    ).one()
                    if low is None or low < high:
                        conn.execute(
                            text(
                                f"CALL refresh_continuous_aggregate('{view}', "
                                "CAST(:low AS timestamptz), CAST(:high AS timestamptz))"
                            ),
                            {"low": low, "high": high},
                        )
            else:
                with engine.begin() as conn:
                    conn.execute(
                        text(
                            INCREMENTAL_ROLLUP.format(
                                view=view,
                                source=SOURCES[view][0],
                                bars=SOURCES[view][1],
                                origin=ORIGIN,
                                where=_window(symbols, window_start, end),
                            )
                        ),
                        {"width": width, "symbols": symbols, "start": window_start, "end": end},
                    )
        except SQLAlchemyError as err:
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise TransientError(
                f"the bars were stored but refreshing the rollup {view} failed: {reason}. "
                "Run `prism db refresh` to retry."
            ) from err


def apply_retention(
    engine: Engine, settings: Settings, now: datetime | None = None
) -> dict[str, int]:
    """Delete the bars of each timeframe older than its retention; return rows deleted per
    timeframe (timeframes kept forever are left out), and on plain PostgreSQL per rollup too.

    ``now`` defaults to the database's clock; tests pass a fixed one. Works in both modes;
    on TimescaleDB the jobs :func:`apply_policies` installs do the same every day, and drop the
    old buckets of the continuous aggregates. On plain PostgreSQL the rollup tables are trimmed
    here to the 1h and 1d retention, as those jobs would. Each timeframe's cutoff is recorded,
    so that later refreshes do not reach behind it.
    """
    policies = configured_policies(settings)
    keep = {p.timeframe: p.keep for p in policies}
    plain = database_mode(engine) != "timescaledb"
    deleted: dict[str, int] = {}
    with engine.begin() as conn:
        check_policies(conn, policies)
        for policy in policies:
            if policy.keep is None:
                continue
            cutoff = _cutoff(conn, policy.keep, now)
            conn.execute(
                text(RECORD_CUTOFF),
                {"key": CUTOFF_KEY.format(timeframe=policy.timeframe), "cutoff": cutoff},
            )
            deleted[policy.timeframe] = _delete_before(conn, bars_storage(policy.timeframe), cutoff)
        for view, timeframe in ROLLUPS.items() if plain else ():
            kept = keep[timeframe]
            if kept is not None:
                cutoff = _cutoff(conn, kept, now)
                conn.execute(
                    text(RECORD_CUTOFF),
                    {"key": CUTOFF_KEY.format(timeframe=_rollup_key(view)), "cutoff": cutoff},
                )
                deleted[view] = _delete_before(conn, view, cutoff)
    return deleted


def _rollup_key(view: str) -> str:
    """Return the name a rollup's retention cutoff is recorded under (``ohlcv_1h``)."""
    return view.removeprefix("market_data.")


def _cutoff(conn: Connection, keep: str, now: datetime | None) -> datetime:
    """Return ``now`` (the database's clock when None) minus the interval ``keep``."""
    cutoff: datetime = conn.execute(
        text("SELECT COALESCE(CAST(:now AS timestamptz), now()) - CAST(:keep AS interval)"),
        {"keep": keep, "now": now},
    ).scalar_one()
    return cutoff


def _delete_before(conn: Connection, table: str, cutoff: datetime) -> int:
    """Delete the rows of ``table`` older than ``cutoff``; return how many."""
    result = conn.execute(text(f"DELETE FROM {table} WHERE time < :cutoff"), {"cutoff": cutoff})
    return result.rowcount


def _timescale_compression(
    conn: Connection, policies: list[Policy], views: list[str], bars: bool
) -> list[str]:
    """Compress each timeframe's bar table (if ``bars``) and each of ``views`` after its
    setting. Migrations 0010 and 0019 run this before migration 0022 has created the bar tables
    (:func:`prism.db.bars.bars_storage`): it skips them then, and 0022 installs their
    compression."""
    by_timeframe = {p.timeframe: p for p in policies}
    done = []
    for policy in policies if bars else []:
        table = bars_storage(policy.timeframe)
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            continue
        conn.execute(text(f"SELECT remove_compression_policy('{table}', if_exists => true)"))
        if policy.compress_after:
            conn.execute(
                text(
                    f"ALTER TABLE {table} SET (timescaledb.compress, "
                    "timescaledb.compress_segmentby = 'symbol, timeframe', "
                    "timescaledb.compress_orderby = 'time DESC')"
                )
            )
            conn.execute(
                text(f"SELECT add_compression_policy('{table}', CAST(:after AS interval))"),
                {"after": policy.compress_after},
            )
            done.append(f"compress {table} after {policy.compress_after}")
    for view in views:
        after = by_timeframe[ROLLUPS[view]].compress_after
        conn.execute(text(f"SELECT remove_compression_policy('{view}', if_exists => true)"))
        if after:
            conn.execute(text(f"ALTER MATERIALIZED VIEW {view} SET (timescaledb.compress = true)"))
            conn.execute(
                text(f"SELECT add_compression_policy('{view}', CAST(:after AS interval))"),
                {"after": after},
            )
            done.append(f"compress {view} after {after}")
    return done


def _timescale_retention(
    conn: Connection, policies: list[Policy], views: list[str], bars: bool
) -> list[str]:
    by_timeframe = {p.timeframe: p for p in policies}
    done = []
    if bars:
        conn.execute(
            text(
                "SELECT delete_job(job_id) FROM timescaledb_information.jobs "
                "WHERE proc_schema = 'market_data' AND proc_name = 'delete_old_bars'"
            )
        )
    for policy in policies if bars else []:
        if policy.keep is None:
            continue
        conn.execute(
            text(
                "SELECT add_job('market_data.delete_old_bars', INTERVAL '1 day', "
                "config => jsonb_build_object('timeframe', CAST(:tf AS text), "
                "'keep', CAST(:keep AS text)))"
            ),
            {"tf": policy.timeframe, "keep": policy.keep},
        )
        done.append(f"delete {policy.timeframe} bars older than {policy.keep}")
    for view in views:
        keep = by_timeframe[ROLLUPS[view]].keep
        conn.execute(text(f"SELECT remove_retention_policy('{view}', if_exists => true)"))
        if keep:
            conn.execute(
                text(f"SELECT add_retention_policy('{view}', CAST(:keep AS interval))"),
                {"keep": keep},
            )
            done.append(f"drop {view} buckets older than {keep}")
    return done


def _source_timeframe(view: str) -> str:
    """Return the timeframe of what ``view`` is computed from: ``1m`` (the 1m bars) for the
    hourly rollup, ``1h`` (the hourly rollup) for the daily one."""
    return ROLLUPS.get(SOURCES[view][0], "1m")


def _timescale_refresh(conn: Connection, policies: list[Policy], views: list[str]) -> list[str]:
    """(Re)install each continuous aggregate's refresh job, looking back no further than its
    source keeps: the 1m retention for the hourly aggregate, the 1h retention for the daily one
    (a refresh behind it would delete buckets whose source rows are gone)."""
    keep = {p.timeframe: p.keep for p in policies}
    done = []
    for view in views:
        start, end, every = REFRESH_POLICIES[view]
        source = _source_timeframe(view)
        kept = keep[source]
        if kept is not None and _seconds(conn, kept) < _seconds(conn, start):
            start = kept
        shortest = _seconds(conn, end) + 2 * _seconds(conn, WIDTHS[view])
        if _seconds(conn, start) < shortest:
            raise ConfigError(
                f"PRISM_RETENTION_{source.upper()}={kept!r} is too short for TimescaleDB's "
                f"refresh of {view}: it must keep at least {shortest / 3600:g} hours (the "
                f"refresh ends {end} back and needs two whole {WIDTHS[view]} buckets before that)"
            )
        conn.execute(
            text(f"SELECT remove_continuous_aggregate_policy('{view}', if_exists => true)")
        )
        conn.execute(
            text(
                f"SELECT add_continuous_aggregate_policy('{view}', "
                "start_offset => CAST(:start AS interval), end_offset => CAST(:end AS interval), "
                "schedule_interval => CAST(:every AS interval))"
            ),
            {"start": start, "end": end, "every": every},
        )
        done.append(f"refresh {view} every {every} over [now - {start}, now - {end}]")
    return done


def _seconds(conn: Connection, interval: str) -> float:
    return float(
        conn.execute(
            text("SELECT extract(epoch FROM CAST(:v AS interval))"), {"v": interval}
        ).scalar_one()
    )


def apply_policies(engine: Engine, settings: Settings) -> list[str]:
    """Install the configured compression and retention as TimescaleDB jobs, replacing the ones
    there; return what was installed. On plain PostgreSQL nothing is installed (an empty list):
    retention there is :func:`apply_retention`, and there is no compression.

    Each timeframe's bar table (:func:`prism.db.bars.bars_storage`) follows its own settings,
    and the rollups follow the 1h and 1d settings.
    """
    if database_mode(engine) != "timescaledb":
        return []
    with engine.begin() as conn:
        return install_timescale_policies(conn, settings)


def install_timescale_policies(
    conn: Connection, settings: Settings, only: str | None = None
) -> list[str]:
    """Install compression, retention and refresh jobs from ``settings`` on a TimescaleDB
    database through ``conn`` (replacing those there); return what was installed.

    ``only`` (a rollup view) installs that rollup's jobs alone, leaving the bar tables' and the
    other rollup's as they are (a migration that recreates one aggregate).
    """
    policies = configured_policies(settings)
    check_policies(conn, policies)
    views = [only] if only else list(ROLLUPS)
    bars = only is None
    return (
        _timescale_compression(conn, policies, views, bars)
        + _timescale_retention(conn, policies, views, bars)
        + _timescale_refresh(conn, policies, views)
    )
