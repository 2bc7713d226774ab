"""prism.db.timescale_build on a stand-in pginstall: the cache is reused without building, a
missing compiler or cmake is one line and recorded, a wrong tarball is refused by checksum.
(The real build is what ``make install`` runs; the integration tests use its result.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prism.db import timescale_build as tb


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the wheel's pginstall, and an empty per-user cache."""
    pginstall = tmp_path / "pginstall"
    (pginstall / "bin").mkdir(parents=True)
    (pginstall / "lib").mkdir()
    (pginstall / "share" / "extension").mkdir(parents=True)
    pg_config = pginstall / "bin" / "pg_config"
    pg_config.write_text("#!/bin/sh\necho 'PostgreSQL 18.6'\n")
    pg_config.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PRISM_TIMESCALEDB", raising=False)
    return pginstall


def _fake_cache(version: str = tb.VERSION) -> Path:
    target = tb.cache_dir(version, "18.6")
    files = {
        "lib": ["timescaledb.so", f"timescaledb-{version}.so", f"timescaledb-tsl-{version}.so"],
        "extension": ["timescaledb.control", f"timescaledb--{version}.sql"],
    }
    for kind, names in files.items():
        (target / kind).mkdir(parents=True, exist_ok=True)
        for name in names:
            (target / kind / name).write_text(name)
    (target / "manifest.json").write_text(json.dumps({"files": files}))
    return target


def test_the_cache_is_keyed_by_timescaledb_version_and_postgresql_major(root: Path):
    assert tb.cache_dir("2.29.2", tb.pg_version(root)).name == "2.29.2-pg18"


def test_a_cached_build_is_copied_without_compiling(root: Path, monkeypatch):
    _fake_cache()
    monkeypatch.setenv("PATH", "/nonexistent")  # no compiler: the copy must not need one

    status = tb.ensure_timescaledb(root, say=lambda _: None)

    assert (status.installed, status.how) == (True, "cached")
    assert tb.is_installed(root)
    assert (root / "lib" / "timescaledb-tsl-2.29.2.so").read_text() == "timescaledb-tsl-2.29.2.so"
    assert tb.ensure_timescaledb(root, say=lambda _: None).how == "present"


def test_missing_build_tools_are_one_line_and_recorded(root: Path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")

    status = tb.ensure_timescaledb(root, say=lambda _: None)

    assert not status.installed and status.how == "unavailable"
    assert "\n" not in status.reason
    assert "gcc, cmake and make not found" in status.reason
    assert tb.read_status(root).reason == status.reason


def test_a_half_written_cache_is_not_used(root: Path, monkeypatch):
    target = _fake_cache()
    (target / "lib" / "timescaledb.so").unlink()
    monkeypatch.setenv("PATH", "/nonexistent")

    assert not tb.cache_is_complete(target)
    assert tb.ensure_timescaledb(root, say=lambda _: None).how == "unavailable"


def test_a_tarball_with_another_checksum_is_refused(tmp_path: Path, monkeypatch):
    fake = tmp_path / "timescaledb-2.29.2.tar.gz"
    fake.write_bytes(b"not the release")
    monkeypatch.setenv("PRISM_TIMESCALEDB_SOURCE", str(fake))

    with pytest.raises(tb.BuildError, match=r"not TimescaleDB 2\.29\.2's"):
        tb.source_tarball(tmp_path, lambda _: None)


def test_off_builds_nothing(root: Path, monkeypatch):
    monkeypatch.setenv("PRISM_TIMESCALEDB", "off")

    assert tb.ensure_timescaledb(root, say=lambda _: None).how == "off"
    assert not tb.is_installed(root)
