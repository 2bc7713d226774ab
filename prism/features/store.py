"""The Parquet feature store: :func:`prism.features.point_in_time.compute` per symbol and
month, rebuilt incrementally and described in ``features.catalog``.

Layout, hive style so ``pyarrow.dataset`` and ``polars.scan_parquet`` prune partitions::

    <feature_dir>/timeframe=1d/symbol=SPX/month=2018-01/part.parquet

A file holds ``time`` and one float64 column per name in :data:`prism.features.point_in_time.NAMES`
for one symbol's bars in one UTC calendar month (symbol and month come from the path; a symbol is
percent-encoded there, so ``BTC/USDT`` stays one folder). Its Parquet metadata carries the
fingerprint of the inputs it was computed from.

What a month depends on: a feature at bar t reads only bars up to t, but all of them, not just
``lookback`` bars, because ATR and ADX are Wilder recursions seeded at the symbol's first bar;
beta also reads the benchmark's bars. So the fingerprint of (symbol, month) chains per-month
digests of the symbol's and the benchmark's bars through that month, plus a hash of the feature
code. The digests are computed in SQL, so a build with nothing new reads no bars. A new bar
rewrites its month; a corrected bar rewrites its month and every later month of its symbol (of
every symbol, when the bar is the benchmark's). Stale months are recomputed from the symbol's
full history, so a stored value always equals ``compute`` on the whole history.
"""

from __future__ import annotations

import hashlib
import os
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import Engine, text

from prism.core.errors import ConfigError, DataUnavailable
from prism.core.settings import load_settings
from prism.data.bars import TIMEFRAMES
from prism.data.store import bars_source, read_bars, stored_symbols
from prism.features import indicators, point_in_time

DEFAULT_BENCHMARK = "SPX"
PART_FILE = "part.parquet"
FINGERPRINT_KEY = b"prism.fingerprint"

Partition = tuple[str, str]
"""A (symbol, month) pair; month is ``YYYY-MM`` in UTC."""

Progress = Callable[[int, int], None]
"""Called after each partition written with (written so far, partitions to write)."""

_MONTH_DIGESTS = """
    SELECT symbol,
           to_char(time AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
           encode(sha256(string_agg(
               int8send(CAST(extract(epoch FROM time) * 1000000 AS bigint))
               || float8send(open) || float8send(high) || float8send(low)
               || float8send(close) || float8send(volume),
               ''::bytea ORDER BY time)), 'hex') AS digest
    FROM {table}
    WHERE timeframe = :timeframe AND symbol = ANY(:symbols)
    GROUP BY symbol, month
    ORDER BY symbol, month
"""

_UPSERT_CATALOG = """
    INSERT INTO features.catalog AS c
        (name, description, dtype, category, computation, dependencies, lookback)
    VALUES (:name, :description, :dtype, :category, :computation,
            CAST(:dependencies AS text[]), :lookback)
    ON CONFLICT (name) DO UPDATE SET
        description = EXCLUDED.description, dtype = EXCLUDED.dtype,
        category = EXCLUDED.category, computation = EXCLUDED.computation,
        dependencies = EXCLUDED.dependencies, lookback = EXCLUDED.lookback, updated_at = now()
    WHERE (c.description, c.dtype, c.category, c.computation, c.dependencies, c.lookback)
          IS DISTINCT FROM
          (EXCLUDED.description, EXCLUDED.dtype, EXCLUDED.category, EXCLUDED.computation,
           EXCLUDED.dependencies, EXCLUDED.lookback)
"""

CATALOG_COLUMNS = [
    "name",
    "description",
    "dtype",
    "category",
    "computation",
    "dependencies",
    "lookback",
    "updated_at",
]


@dataclass(frozen=True)
class SymbolSummary:
    """One symbol's line of a build: months written, left unchanged and removed."""

    symbol: str
    written: int
    unchanged: int
    removed: int
    first_written: str | None
    last_written: str | None


@dataclass(frozen=True)
class BuildReport:
    """What a build did, per (symbol, month) partition, and where the store is."""

    timeframe: str
    root: Path
    written: tuple[Partition, ...]
    unchanged: tuple[Partition, ...]
    removed: tuple[Partition, ...]
    rows_written: int

    def by_symbol(self) -> list[SymbolSummary]:
        """Return one summary per symbol the build touched, in symbol order."""
        symbols = sorted({s for s, _ in (*self.written, *self.unchanged, *self.removed)})
        summaries = []
        for symbol in symbols:
            months = sorted(m for s, m in self.written if s == symbol)
            summaries.append(
                SymbolSummary(
                    symbol=symbol,
                    written=len(months),
                    unchanged=sum(1 for s, _ in self.unchanged if s == symbol),
                    removed=sum(1 for s, _ in self.removed if s == symbol),
                    first_written=months[0] if months else None,
                    last_written=months[-1] if months else None,
                )
            )
        return summaries


def _symbol_folder(root: Path, timeframe: str, symbol: str) -> Path:
    return root / f"timeframe={timeframe}" / f"symbol={quote(symbol, safe='')}"


def partition_path(root: Path, timeframe: str, symbol: str, month: str) -> Path:
    """Return the file of one (symbol, month) partition under the store's ``root``."""
    return _symbol_folder(root, timeframe, symbol) / f"month={month}" / PART_FILE


def code_fingerprint() -> str:
    """Return a hash of the code that computes the features, so editing it invalidates the
    store (a docstring edit too: rebuilding costs seconds, a stale value costs a wrong study)."""
    digest = hashlib.sha256()
    for module in (point_in_time, indicators):
        assert module.__file__ is not None
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def sync_catalog(engine: Engine) -> int:
    """Make ``features.catalog`` describe exactly :data:`prism.features.point_in_time.CATALOG`;
    return its row count. ``updated_at`` moves only for a row whose description changed."""
    rows = [
        {
            "name": f.name,
            "description": f.description,
            "dtype": f.dtype,
            "category": f.category,
            "computation": f.computation,
            "dependencies": list(f.dependencies),
            "lookback": f.lookback,
        }
        for f in point_in_time.CATALOG
    ]
    with engine.begin() as conn:
        conn.execute(text(_UPSERT_CATALOG), rows)
        conn.execute(
            text("DELETE FROM features.catalog WHERE NOT (name = ANY(:names))"),
            {"names": list(point_in_time.NAMES)},
        )
    return len(rows)


def read_catalog(engine: Engine) -> pd.DataFrame:
    """Return ``features.catalog`` ordered as :data:`~prism.features.point_in_time.CATALOG`
    lists it.

    Raises :class:`DataUnavailable` when it is empty (no build has run on this database).
    """
    with engine.connect() as conn:
        frame = pd.read_sql_query(
            text(f"SELECT {', '.join(CATALOG_COLUMNS)} FROM features.catalog"), conn
        )
    if frame.empty:
        raise DataUnavailable(
            "features.catalog is empty; run `prism features build` to fill it and the store"
        )
    order = {name: i for i, name in enumerate(point_in_time.NAMES)}
    frame["dependencies"] = frame["dependencies"].map(tuple)
    return frame.sort_values("name", key=lambda s: s.map(order)).reset_index(drop=True)


def _check_timeframe(timeframe: str) -> None:
    if timeframe not in TIMEFRAMES:
        raise ConfigError(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}")


def _resolve_symbols(
    engine: Engine, symbols: Iterable[str] | None, timeframe: str, benchmark: str
) -> list[str]:
    """Return the symbols to build, checking that they and the benchmark have bars."""
    stored = stored_symbols(engine, timeframe)
    if not stored:
        raise DataUnavailable(
            f"no {timeframe} bars in the database; run `prism data ingest bundled` first"
        )
    chosen = sorted(set(symbols)) if symbols is not None else stored
    missing = sorted(set(chosen) - set(stored))
    if missing:
        raise DataUnavailable(
            f"no {timeframe} bars for {', '.join(missing)}; stored symbols: {', '.join(stored)}"
        )
    if benchmark not in stored:
        raise DataUnavailable(
            f"the benchmark {benchmark} has no {timeframe} bars (beta needs it); ingest it or "
            f"choose one of {', '.join(stored)} with --benchmark"
        )
    return chosen


def _month_digests(engine: Engine, symbols: list[str], timeframe: str) -> pd.DataFrame:
    """Return symbol, month and a SHA-256 of that month's bars (time and the exact bits of
    open, high, low, close, volume; the source column is not a feature input)."""
    with engine.connect() as conn:
        return pd.read_sql_query(
            text(_MONTH_DIGESTS.format(table=bars_source(timeframe))),
            conn,
            params={"timeframe": timeframe, "symbols": symbols},
        )


def _chain(months: list[str], digests: list[str]) -> list[str]:
    """Return, per month, a hash of that month's digest and every earlier one."""
    running, out = "", []
    for month, digest in zip(months, digests, strict=True):
        running = hashlib.sha256(f"{running}|{month}|{digest}".encode()).hexdigest()
        out.append(running)
    return out


def _fingerprints(
    digests: pd.DataFrame, symbols: list[str], benchmark: str, code: str
) -> dict[Partition, str]:
    """Return the wanted fingerprint of every (symbol, month) of ``symbols`` that has bars."""
    chains: dict[str, tuple[list[str], list[str]]] = {}
    for symbol, group in digests.groupby("symbol", sort=False):
        months = group["month"].tolist()
        chains[str(symbol)] = (months, _chain(months, group["digest"].tolist()))
    bench_months, bench_chain = chains.get(benchmark, ([], []))
    wanted = {}
    for symbol in symbols:
        for month, own in zip(*chains.get(symbol, ([], [])), strict=True):
            at = bisect_right(bench_months, month)
            bench = bench_chain[at - 1] if at else ""
            payload = f"{code}|{benchmark}|{own}|{bench}"
            wanted[(symbol, month)] = hashlib.sha256(payload.encode()).hexdigest()
    return wanted


def _stored_fingerprints(root: Path, timeframe: str, symbols: list[str]) -> dict[Partition, str]:
    """Return the fingerprint each existing partition of ``symbols`` was written with."""
    stored = {}
    for symbol in symbols:
        for path in _symbol_folder(root, timeframe, symbol).glob(f"month=*/{PART_FILE}"):
            metadata = pq.read_schema(path).metadata or {}
            month = path.parent.name.removeprefix("month=")
            stored[(symbol, month)] = metadata.get(FINGERPRINT_KEY, b"").decode()
    return stored


def _write_partition(path: Path, values: pd.DataFrame, fingerprint: str) -> None:
    """Write one partition atomically: a temporary file renamed over the old one, so a reader
    or a crashed build never sees half a file. The temporary name starts with a dot, which
    dataset readers skip."""
    table = pa.Table.from_pandas(values[["time", *point_in_time.NAMES]], preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), FINGERPRINT_KEY: fingerprint.encode()}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, partial)
    os.replace(partial, path)


def _remove_partition(path: Path) -> None:
    path.unlink(missing_ok=True)
    if path.parent.exists() and not any(path.parent.iterdir()):
        path.parent.rmdir()


def _computed_by_month(
    engine: Engine, symbols: list[str], timeframe: str, benchmark: str
) -> dict[Partition, pd.DataFrame]:
    """Return the features of ``symbols`` over their whole history, split by (symbol, month)."""
    bars = read_bars(engine, sorted({*symbols, benchmark}), timeframe=timeframe)
    values = point_in_time.compute(bars, benchmark)
    values = values[values["symbol"].isin(symbols)]
    months = values["time"].dt.strftime("%Y-%m")
    return {
        (str(symbol), str(month)): group
        for (symbol, month), group in values.groupby([values["symbol"], months], sort=False)
    }


def build(
    engine: Engine,
    symbols: Iterable[str] | None = None,
    timeframe: str = "1d",
    benchmark: str = DEFAULT_BENCHMARK,
    root: Path | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Bring the store up to date with the bars in the database; return what was written.

    ``symbols`` defaults to every symbol with bars of ``timeframe``; ``root`` to the
    ``feature_dir`` setting. Only months whose fingerprint changed are recomputed and written,
    and partitions whose month no longer has bars are removed. The catalog is synced first.
    Digests are taken before bars are read, so a bar landing in between leaves its month
    labelled stale and the next build rewrites it.
    """
    _check_timeframe(timeframe)
    store = root if root is not None else load_settings().feature_dir
    chosen = _resolve_symbols(engine, symbols, timeframe, benchmark)
    sync_catalog(engine)
    digests = _month_digests(engine, sorted({*chosen, benchmark}), timeframe)
    wanted = _fingerprints(digests, chosen, benchmark, code_fingerprint())
    existing = _stored_fingerprints(store, timeframe, chosen)
    stale = sorted(key for key, value in wanted.items() if existing.get(key) != value)
    removed = sorted(set(existing) - set(wanted))
    rows = _write_stale(engine, store, timeframe, benchmark, stale, wanted, progress)
    for symbol, month in removed:
        _remove_partition(partition_path(store, timeframe, symbol, month))
    return BuildReport(
        timeframe=timeframe,
        root=store,
        written=tuple(stale),
        unchanged=tuple(sorted(set(wanted) - set(stale))),
        removed=tuple(removed),
        rows_written=rows,
    )


def _write_stale(
    engine: Engine,
    store: Path,
    timeframe: str,
    benchmark: str,
    stale: list[Partition],
    wanted: dict[Partition, str],
    progress: Progress | None,
) -> int:
    """Recompute the symbols that have stale months and write those months; return rows."""
    if not stale:
        return 0
    computed = _computed_by_month(engine, sorted({s for s, _ in stale}), timeframe, benchmark)
    rows = 0
    for done, key in enumerate(stale, start=1):
        values = computed.get(key)
        if values is not None:
            _write_partition(partition_path(store, timeframe, *key), values, wanted[key])
            rows += len(values)
        if progress is not None:
            progress(done, len(stale))
    return rows


def _utc(value: str | datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _filter(
    symbols: list[str] | None, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> ds.Expression | None:
    """Return a dataset filter on symbol, month (which prunes files) and time."""
    time_type = pa.timestamp("us", tz="UTC")
    terms = []
    if symbols is not None:
        terms.append(ds.field("symbol").isin(symbols))
    if start is not None:
        terms.append(ds.field("month") >= start.strftime("%Y-%m"))
        terms.append(ds.field("time") >= pa.scalar(start, type=time_type))
    if end is not None:
        terms.append(ds.field("month") <= end.strftime("%Y-%m"))
        terms.append(ds.field("time") <= pa.scalar(end, type=time_type))
    if not terms:
        return None
    combined = terms[0]
    for term in terms[1:]:
        combined = combined & term
    return combined


def _check_columns(columns: Iterable[str] | None) -> list[str]:
    chosen = list(point_in_time.NAMES) if columns is None else list(columns)
    unknown = [c for c in chosen if c not in point_in_time.NAMES]
    if unknown:
        raise ConfigError(
            f"unknown feature(s) {', '.join(unknown)}; "
            f"the catalog has {', '.join(point_in_time.NAMES)}"
        )
    return chosen


def read(
    symbols: Iterable[str] | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    timeframe: str = "1d",
    columns: Iterable[str] | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """Return stored features with ``start <= time <= end``, shaped as
    :func:`prism.features.point_in_time.compute` returns them: time, symbol, then ``columns``
    (default: all), ordered by symbol and time.

    Raises :class:`DataUnavailable` naming requested symbols the store has nothing for.
    """
    _check_timeframe(timeframe)
    names = _check_columns(columns)
    store = root if root is not None else load_settings().feature_dir
    base = store / f"timeframe={timeframe}"
    wanted = sorted(set(symbols)) if symbols is not None else None
    if not base.is_dir():
        raise DataUnavailable(
            f"no {timeframe} features under {store}; run `prism features build "
            f"--timeframe {timeframe}` first"
        )
    dataset = ds.dataset(
        base,
        format="parquet",
        partitioning=ds.partitioning(
            pa.schema([("symbol", pa.string()), ("month", pa.string())]), flavor="hive"
        ),
    )
    table = dataset.to_table(
        columns=["time", "symbol", *names], filter=_filter(wanted, _utc(start), _utc(end))
    )
    frame = table.to_pandas().sort_values(["symbol", "time"], kind="stable")
    missing = sorted(set(wanted or ()) - set(frame["symbol"]))
    if missing:
        raise DataUnavailable(
            f"no stored {timeframe} features for {', '.join(missing)} between "
            f"{start or 'the start'} and {end or 'the end'}; run `prism features build "
            f"--symbols {','.join(missing)} --timeframe {timeframe}`"
        )
    return frame.reset_index(drop=True)
