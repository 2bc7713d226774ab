"""The Parquet feature store against the real database: layout, equality with
``point_in_time.compute``, incremental rebuilds, the catalog, and the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

from prism.cli.app import app
from prism.core.errors import DataUnavailable
from prism.data.sources import ArchBarSource
from prism.data.store import ingest, read_bars, upsert_bars
from prism.features import point_in_time
from prism.features.store import build, partition_path, read, read_catalog

ROOT = Path(__file__).resolve().parents[3]
MONTHS = 20 * 12


@pytest.fixture
def stocked(engine):
    ingest(engine, ArchBarSource())
    return engine


@pytest.fixture
def built(stocked, tmp_path):
    build(stocked, root=tmp_path)
    return tmp_path


def _expected(engine, start=None, end=None) -> pd.DataFrame:
    values = point_in_time.compute(read_bars(engine, ["NDX", "SPX"]), "SPX")
    keep = pd.Series(True, index=values.index)
    if start is not None:
        keep &= values["time"] >= pd.Timestamp(start, tz="UTC")
    if end is not None:
        keep &= values["time"] <= pd.Timestamp(end, tz="UTC")
    return values[keep].reset_index(drop=True)


def _correct_close(engine, symbol: str, day: str) -> None:
    """Move one stored close to the middle of its bar's range."""
    bar = read_bars(engine, [symbol], start=day, end=day)
    bar["close"] = (bar["high"] + bar["low"]) / 2
    assert upsert_bars(engine, bar) == (0, 1)


def _add_bars(engine, days: list[str], symbols: list[str]) -> None:
    last = read_bars(engine, symbols, last=1)
    rows = [last.assign(time=pd.Timestamp(day, tz="UTC")) for day in days]
    new = pd.concat(rows, ignore_index=True)
    new["time"] = new["time"].astype("datetime64[us, UTC]")
    assert upsert_bars(engine, new) == (len(new), 0)


def test_a_build_writes_one_hive_partition_per_symbol_and_month(stocked, tmp_path):
    report = build(stocked, root=tmp_path)

    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")}
    assert len(files) == 2 * MONTHS
    assert "timeframe=1d/symbol=SPX/month=1999-01/part.parquet" in files
    assert "timeframe=1d/symbol=NDX/month=2018-12/part.parquet" in files
    assert (len(report.written), report.unchanged, report.removed) == (2 * MONTHS, (), ())
    assert report.rows_written == 10_062
    january = (
        pl.scan_parquet(tmp_path / "**/*.parquet", hive_partitioning=True)
        .filter((pl.col("symbol") == "SPX") & (pl.col("month") == "2018-01"))
        .collect()
    )
    assert january.height == len(read_bars(stocked, ["SPX"], "2018-01-01", "2018-01-31"))


def test_the_store_reads_back_equal_to_compute_on_the_same_bars(stocked, built):
    pd.testing.assert_frame_equal(read(root=built), _expected(stocked), check_exact=True)

    window = read(["NDX"], "2008-09-15", "2008-10-31", columns=["atr_14", "beta_60"], root=built)

    expected = _expected(stocked, "2008-09-15", "2008-10-31")
    expected = expected.loc[expected["symbol"] == "NDX", ["time", "symbol", "atr_14", "beta_60"]]
    pd.testing.assert_frame_equal(window, expected.reset_index(drop=True), check_exact=True)


def test_a_month_filter_prunes_the_files_read(built):
    dataset = ds.dataset(built / "timeframe=1d", format="parquet", partitioning="hive")

    fragments = list(dataset.get_fragments(filter=ds.field("month") == "2018-01"))

    assert len(fragments) == 2


def test_a_second_build_writes_nothing(stocked, built):
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*.parquet")}

    report = build(stocked, root=built)

    assert (report.written, len(report.unchanged), report.rows_written) == ((), 2 * MONTHS, 0)
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*.parquet")} == before


def test_a_corrected_close_rewrites_its_month_and_every_later_month_of_its_symbol(stocked, built):
    _correct_close(stocked, "NDX", "2018-11-14")

    report = build(stocked, root=built)

    assert report.written == (("NDX", "2018-11"), ("NDX", "2018-12"))
    assert len(report.unchanged) == 2 * MONTHS - 2
    pd.testing.assert_frame_equal(read(root=built), _expected(stocked), check_exact=True)


def test_a_corrected_benchmark_bar_rewrites_that_month_of_every_symbol(stocked, built):
    _correct_close(stocked, "SPX", "2018-12-12")

    report = build(stocked, root=built)

    assert report.written == (("NDX", "2018-12"), ("SPX", "2018-12"))
    pd.testing.assert_frame_equal(read(root=built), _expected(stocked), check_exact=True)


def test_new_bars_write_only_their_month(stocked, built):
    _add_bars(stocked, ["2019-01-02"], ["NDX", "SPX"])
    first = build(stocked, root=built)
    _add_bars(stocked, ["2019-01-03"], ["NDX"])
    second = build(stocked, root=built)

    assert first.written == (("NDX", "2019-01"), ("SPX", "2019-01"))
    assert second.written == (("NDX", "2019-01"),)
    assert len(read(["NDX"], start="2019-01-01", root=built)) == 2
    pd.testing.assert_frame_equal(read(root=built), _expected(stocked), check_exact=True)


def test_a_build_of_one_symbol_leaves_the_others_alone(stocked, tmp_path):
    report = build(stocked, ["NDX"], root=tmp_path)

    assert {s for s, _ in report.written} == {"NDX"}
    assert not partition_path(tmp_path, "1d", "SPX", "2018-01").exists()
    expected = _expected(stocked)
    expected = expected[expected["symbol"] == "NDX"].reset_index(drop=True)
    pd.testing.assert_frame_equal(read(["NDX"], root=tmp_path), expected, check_exact=True)


def test_the_catalog_table_describes_every_feature(stocked, built):
    catalog = read_catalog(stocked)

    rows = [
        (r.name, r.description, r.dtype, r.category, r.computation, r.dependencies, r.lookback)
        for r in catalog.itertuples()
    ]
    assert rows == [
        (f.name, f.description, f.dtype, f.category, f.computation, f.dependencies, f.lookback)
        for f in point_in_time.CATALOG
    ]
    assert catalog["updated_at"].notna().all()


def test_an_empty_database_says_to_ingest_first(engine, tmp_path):
    with pytest.raises(DataUnavailable, match=r"run `prism data ingest bundled`"):
        build(engine, root=tmp_path)


def test_an_unknown_symbol_and_an_unbuilt_store_name_the_fix(stocked, tmp_path):
    with pytest.raises(DataUnavailable, match="no 1d bars for XYZ; stored symbols: NDX, SPX"):
        build(stocked, ["XYZ"], root=tmp_path)
    with pytest.raises(DataUnavailable, match=r"run `prism features build --timeframe 1d`"):
        read(root=tmp_path)


def test_the_cli_builds_incrementally_and_prints_the_catalog(stocked, tmp_path):
    runner = CliRunner()
    env = {"PRISM_FEATURE_DIR": str(tmp_path), "COLUMNS": "200"}

    first = runner.invoke(app, ["features", "build", "--symbols", "SPX"], env=env)
    second = runner.invoke(app, ["features", "build", "--symbols", "SPX"], env=env)
    catalog = runner.invoke(app, ["features", "catalog"], env=env)

    assert first.exit_code == 0, first.output
    assert f"{MONTHS} months written" in first.output
    assert "0 months written" in second.output
    assert f"{MONTHS} unchanged" in second.output
    assert partition_path(tmp_path, "1d", "SPX", "2018-12").exists()
    assert catalog.exit_code == 0, catalog.output
    for feature in point_in_time.CATALOG:
        assert feature.name in catalog.output


def test_the_cli_reports_an_empty_database_in_one_line(engine, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from prism.cli.app import main; main()", "features", "build"],
        cwd=ROOT,
        env={**os.environ, "PRISM_FEATURE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "run `prism data ingest bundled`" in result.stderr
