"""Set-up for ``pytest --nbval-lax notebooks/``: a temporary workspace with the bundled bars.

Runs at configure time, before nbval starts a kernel, so the kernels inherit the workspace.
Each notebook's kernel is also told which notebook it runs (``JPY_SESSION_NAME``, as
JupyterLab tells its kernels), so its MLflow run is tagged with the notebook's path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_WORKSPACE: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _WORKSPACE
    _WORKSPACE = Path(tempfile.mkdtemp(prefix="prism-nbval-"))
    os.environ["PRISM_HOME"] = str(_WORKSPACE / "home")
    os.environ["PRISM_MLRUNS_DIR"] = str(_WORKSPACE / "mlruns")
    for key in ("PRISM_DATABASE_URL", "MLFLOW_TRACKING_URI"):
        os.environ.pop(key, None)
    from prism.core.settings import export_service_environment, load_settings
    from prism.data.sources import ArchBarSource
    from prism.data.store import ingest
    from prism.db.engine import open_database

    export_service_environment(load_settings())
    ingest(open_database(load_settings()), ArchBarSource())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    os.environ["JPY_SESSION_NAME"] = str(item.path)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _WORKSPACE is not None:
        from prism.db import embedded

        embedded.stop(_WORKSPACE / "home" / "postgres")
