"""Bars from CSV and Parquet files, read with polars.

A file rarely uses Prism's column names, so the source takes a mapping from the file's names to
the bar columns (``{"Date": "time", "Adj Close": "close"}``); after mapping, names are matched
case-insensitively and a lone ``date``/``datetime``/``timestamp`` column is taken as ``time``.
Naive timestamps are read in a configurable time zone (UTC by default) and stamped by the
bar-frame convention of :func:`prism.data.bars.bar_times`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

import pandas as pd
import polars as pl

from prism.core.errors import ConfigError
from prism.data.bars import PRICE_COLUMNS, TIMEFRAMES, bar_times, normalise
from prism.data.calendars import ALWAYS_OPEN, exchange_calendar
from prism.data.sources import Asset

FileFormat = Literal["csv", "parquet"]
_FORMATS: dict[str, FileFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_TIME_ALIASES = ("date", "datetime", "timestamp")
REQUIRED_COLUMNS = ("time", *PRICE_COLUMNS, "volume")


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """Return ``{file column: bar column}`` from ``"Date=time"`` strings (CLI ``--map``)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.rpartition("=")
        if not sep or not source.strip() or not target.strip():
            raise ConfigError(
                f"expected --map FILE_COLUMN=BAR_COLUMN, got {pair!r}; example: --map Date=time"
            )
        mapping[source.strip()] = target.strip()
    return mapping


class FileBarSource:
    """Bars of one CSV or Parquet file, for one symbol or with a symbol column."""

    def __init__(
        self,
        path: str | Path,
        symbol: str | None = None,
        timeframe: str = "1d",
        mapping: dict[str, str] | None = None,
        timezone: str = "UTC",
        date_format: str | None = None,
        file_format: FileFormat | None = None,
        calendar: str | None = None,
    ) -> None:
        """Describe the file; nothing is read until :meth:`fetch`.

        ``symbol`` names every row's instrument; without it the file needs a ``symbol`` column
        (possibly mapped). ``file_format`` defaults to the suffix (``.csv``, ``.parquet``).
        ``calendar`` (an exchange_calendars name such as XLON, or ``24/7``) is the trading
        calendar gaps are found against.
        """
        self.path = Path(path)
        self.symbol = symbol
        self.timeframe = timeframe
        self.mapping = dict(mapping or {})
        self.timezone = timezone
        self.date_format = date_format
        self.file_format = file_format or _format_of(self.path)
        self.calendar = _checked_calendar(calendar)
        self.name: str = self.file_format
        if timeframe not in TIMEFRAMES:
            raise ConfigError(
                f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
            )
        _check_timezone(timezone)

    def assets(self) -> list[Asset]:
        """Return one asset per symbol in the file. A file says nothing about the instrument,
        so the class is ``unknown`` and, unless ``calendar`` was given, a known asset keeps its
        stored calendar and a new one gets the table's default (XNYS)."""
        symbols = [self.symbol] if self.symbol else sorted(self._read()["symbol"].unique())
        return [
            Asset(symbol, symbol, asset_class="unknown", calendar=self.calendar)
            for symbol in symbols
        ]

    def fetch(self) -> pd.DataFrame:
        """Return the file's rows as a bar frame; unparsable values become NaN (quarantined)."""
        frame = self._read()
        frame["time"] = self._times(frame["time"])
        frame["timeframe"] = self.timeframe
        frame["source"] = self.name
        return normalise(frame)

    def _read(self) -> pd.DataFrame:
        if not self.path.is_file():
            raise ConfigError(f"no such file: {self.path}")
        raw = self._parse()
        if raw.height == 0:
            raise ConfigError(f"{self.path}: line 2: the file has no rows; nothing was loaded")
        selected = _bar_columns(raw, self.mapping, self.path)
        _check_numbers(selected, self.path, header_lines=int(self.file_format == "csv"))
        frame = selected.to_pandas()
        if self.symbol is not None:
            frame["symbol"] = self.symbol
        elif "symbol" not in frame.columns:
            raise ConfigError(
                f"{self.path.name} has no symbol column; pass --symbol SYM or map one "
                f"(--map Ticker=symbol); columns found: {', '.join(raw.columns)}"
            )
        return frame

    def _parse(self) -> pl.DataFrame:
        """Read the whole file with polars; a file it cannot parse is a :class:`ConfigError`
        naming the file, the line and the problem."""
        if self.file_format == "csv":
            _check_text(self.path)
        try:
            if self.file_format == "csv":
                return pl.read_csv(self.path, infer_schema_length=None)
            return pl.read_parquet(self.path)
        except pl.exceptions.NoDataError:
            raise ConfigError(
                f"{self.path}: line 1: the file is empty; nothing was loaded"
            ) from None
        except pl.exceptions.PolarsError as err:
            line = _csv_problem_line(self.path) if self.file_format == "csv" else None
            where = line or f"cannot be read as {self.file_format}"
            problem = str(err).splitlines()[0]
            raise ConfigError(f"{self.path}: {where} ({problem}); nothing was loaded") from err

    def _times(self, values: pd.Series) -> pd.Series:
        try:
            parsed = pd.to_datetime(values, format=self.date_format)
        except (ValueError, TypeError) as err:
            bad = _first_bad_time(values, self.date_format)
            raise ConfigError(
                f"{self.path}: line {bad + 1 + int(self.file_format == 'csv')}: cannot read the "
                f"time {values.iloc[bad]!r} of {self.path.name} with format "
                f"{self.date_format or 'inferred'} ({str(err).splitlines()[0]}); pass "
                "--date-format, e.g. --date-format '%d/%m/%Y'; nothing was loaded"
            ) from err
        return bar_times(parsed, self.timeframe, self.timezone)


def _first_bad_time(values: pd.Series, date_format: str | None) -> int:
    """Return the position of the first value that does not parse as a time (0 if none)."""
    for position, value in enumerate(values):
        if value is None or (isinstance(value, float) and value != value):
            continue
        try:
            pd.to_datetime(value, format=date_format)
        except (ValueError, TypeError):
            return position
    return 0


def _check_text(path: Path) -> None:
    """Raise a :class:`ConfigError` naming the file, the line and the encoding when a CSV is
    not UTF-8 text (a binary file, or text saved in another encoding)."""
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: holds NUL bytes, so it is a binary file, not CSV text; "
            "nothing was loaded"
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: byte 0x{data[err.start]:02x} is not UTF-8; save the file as "
            "UTF-8 text (it may be Latin-1 or UTF-16); nothing was loaded"
        ) from None


def _csv_problem_line(path: Path) -> str | None:
    """Return where a CSV polars cannot parse goes wrong (polars' error does not say): "line
    N: a quote opened here is never closed", or "line N: has K fields, the header has H" for
    the first line whose field count differs from the header's, or None."""
    text = path.read_text(encoding="utf-8")
    opened = _unclosed_quote_line(text)
    if opened is not None:
        return f"line {opened}: a quote opened here is never closed"
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, [])
    for row in rows:
        if row and len(row) != len(header):
            return f"line {rows.line_num}: has {len(row)} fields, the header has {len(header)}"
    return None


def _unclosed_quote_line(text: str) -> int | None:
    """Return the line on which a double-quoted CSV field opens and never closes, or None."""
    line, quoted_since, at_field_start, position = 1, None, True, 0
    while position < len(text):
        char = text[position]
        if quoted_since is not None:
            if char == '"':
                if text[position + 1 : position + 2] == '"':
                    position += 1
                else:
                    quoted_since = None
            elif char == "\n":
                line += 1
        elif char == '"' and at_field_start:
            quoted_since = line
        elif char == "\n":
            line += 1
        at_field_start = quoted_since is None and char in ",\n\r"
        position += 1
    return quoted_since


def _check_numbers(frame: pl.DataFrame, path: Path, header_lines: int) -> None:
    """Raise a :class:`ConfigError` naming the first line whose price or volume is not a number
    (empty cells are allowed: validation quarantines them as missing values)."""
    for column in (*PRICE_COLUMNS, "volume"):
        values = frame[column]
        if values.dtype.is_numeric():
            continue
        as_text = values.cast(pl.String)
        bad = as_text.is_not_null() & values.cast(pl.Float64, strict=False).is_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise ConfigError(
                f"{path}: line {row + 1 + header_lines}: {column} is {as_text[row]!r}, not a "
                "number; fix the file, nothing was loaded"
            )


def _checked_calendar(calendar: str | None) -> str | None:
    """Return ``calendar`` if gap detection can read it (``24/7`` or an exchange_calendars
    name), else raise a ConfigError listing how to name one."""

    if calendar is not None and calendar != ALWAYS_OPEN:
        exchange_calendar(calendar)
    return calendar


def _format_of(path: Path) -> FileFormat:
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"cannot tell the format of {path.name}; use a .csv or .parquet file"
        ) from None


def _check_timezone(timezone: str) -> None:
    try:
        pd.Timestamp("2000-01-01").tz_localize(timezone)
    except Exception as err:
        raise ConfigError(
            f"unknown time zone {timezone!r}; use an IANA name such as America/New_York"
        ) from err


def _bar_columns(raw: pl.DataFrame, mapping: dict[str, str], path: Path) -> pl.DataFrame:
    """Rename ``raw``'s columns to bar columns and keep only those; name any that are missing."""
    unknown = sorted(set(mapping) - set(raw.columns))
    if unknown:
        raise ConfigError(
            f"--map names column(s) {', '.join(unknown)} that {path.name} does not have; "
            f"columns found: {', '.join(raw.columns)}"
        )
    shadowed = [c for c in set(mapping.values()) if c in raw.columns and c not in mapping]
    renamed = raw.drop(shadowed).rename(mapping)
    lower = {c: c.lower() for c in renamed.columns if c.lower() != c and c.lower() not in renamed}
    renamed = renamed.rename(lower)
    aliases = [c for c in _TIME_ALIASES if c in renamed.columns]
    if "time" not in renamed.columns and len(aliases) == 1:
        renamed = renamed.rename({aliases[0]: "time"})
    missing = [c for c in REQUIRED_COLUMNS if c not in renamed.columns]
    if missing:
        raise ConfigError(
            f"{path.name} has no column for {', '.join(missing)}; columns found: "
            f"{', '.join(raw.columns)}; map them with --map FILE_COLUMN=BAR_COLUMN "
            "(e.g. --map 'Adj Close=close')"
        )
    kept = [*REQUIRED_COLUMNS, *(["symbol"] if "symbol" in renamed.columns else [])]
    return renamed.select(kept)
