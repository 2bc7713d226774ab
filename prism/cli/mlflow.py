"""``prism mlflow``: MLflow on the project's own tracking store."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from prism.cli.common import errors
from prism.core.settings import export_service_environment, load_settings

mlflow_app = typer.Typer(help="MLflow on the project's own tracking store.", no_args_is_help=True)


def ui_command(tracking_uri: str, artifact_uri: str, host: str, port: int) -> list[str]:
    """Return the ``mlflow ui`` command line serving ``tracking_uri`` (runs and registry) with
    new artifacts under ``artifact_uri``."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--default-artifact-root",
        artifact_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]


@mlflow_app.command("ui")
def mlflow_ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to serve on")] = 5000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Serve the MLflow UI on the project's tracking store (PRISM_MLRUNS_DIR or
    MLFLOW_TRACKING_URI) at http://HOST:PORT until Ctrl-C."""
    settings = load_settings()
    export_service_environment(settings)
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    argv = ui_command(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri, host, port)
    errors.print(
        f"MLflow UI on {settings.mlflow_tracking_uri}: http://{host}:{port} (Ctrl-C stops)"
    )
    try:
        code = subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
