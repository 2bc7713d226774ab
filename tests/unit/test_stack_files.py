"""The set-up files stay honest: the lock satisfies pyproject, environment.yml installs the lock,
and docker-compose.yml is a valid compose file wired to the services Prism needs."""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins[canonicalize_name(name.split("[")[0])] = version
    return pins


def test_every_dependency_in_pyproject_is_pinned_in_the_lock_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]

    for text in requirements:
        requirement = Requirement(text.split("#")[0].strip())
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {requirement}"


def test_the_stack_pins_that_prefect_needs_are_in_the_lock():
    pins = _pins()
    # 0.151+ answers Prefect 3.8's sync client and CLI with HTTP 422; 0.155+ fails every run
    assert 139 <= int(pins["fastapi"].split(".")[1]) < 151
    assert pins["sqlalchemy"].startswith("2.0.")


def test_environment_yml_installs_the_lock_and_the_project_on_the_same_python():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]

    assert "python=3.11" in environment["dependencies"]
    assert ">=3.11" in requires
    assert pip == ["-r requirements.lock", "fastapi>=0.139,<0.151", "-e .[dev]"]
    fastapi = next(
        Requirement(text.split("#")[0].strip())
        for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if text.startswith("fastapi")
    )
    assert str(fastapi.specifier) == str(Requirement(pip[1]).specifier)


def test_compose_runs_the_full_stack_against_timescaledb():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    assert {"db", "mlflow", "prefect", "deploy", "runner", "dashboard", "jupyter"} <= set(services)
    assert services["db"]["image"].startswith("timescale/timescaledb")
    for name in ("runner", "jupyter"):
        environment = services[name]["environment"]
        assert environment["PRISM_DATABASE_URL"].endswith("@db:5432/prism")
        assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    dashboard = services["dashboard"]["environment"]
    assert "PRISM_DATABASE_URL" not in dashboard
    assert dashboard["PRISM_DASHBOARD_DATABASE_URL"].startswith("postgresql://prism_reader:")
    assert dashboard["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert services["deploy"]["command"].startswith("python -m runner.deploy --pool prism")
    assert services["runner"]["command"] == "prefect worker start --pool prism --type process"
    assert services["runner"]["depends_on"]["deploy"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["deploy"]["environment"]["PREFECT_API_URL"] == "http://prefect:4200/api"
    dockerfile = ROOT / services["runner"]["build"]["dockerfile"]
    assert "requirements.lock" in dockerfile.read_text()


COMPOSE_SECRETS = (
    "POSTGRES_PASSWORD",
    "PRISM_READER_PASSWORD",
    "DASHBOARD_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "JUPYTER_TOKEN",
)
"""The variables docker-compose.yml refuses to start without."""
PUBLISHED = {"dashboard": ["8501:8501"], "grafana": ["3000:3000"], "jupyter": ["8888:8888"]}


def test_compose_publishes_only_the_dashboard_grafana_and_jupyter():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}

    assert published == PUBLISHED


def test_compose_has_no_literal_or_default_secret():
    text = (ROOT / "docker-compose.yml").read_text()
    variables = re.findall(r"\$\{([A-Z_]+)(:?[-?])?([^}]*)\}", text)
    credentials = re.findall(r"://[^:/@\s]+:(.+?)@", text)

    secrets = {name: (kind, rest) for name, kind, rest in variables if name in COMPOSE_SECRETS}
    assert set(secrets) == set(COMPOSE_SECRETS)
    assert all(kind == ":?" and rest.startswith("set ") for kind, rest in secrets.values())
    assert credentials and all(c.startswith("${") and ":?" in c for c in credentials)
    services = yaml.safe_load(text)["services"]
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "TOKEN" in key:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (key, value)


def test_jupyter_asks_for_its_token():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    assert "--IdentityProvider.token=${JUPYTER_TOKEN:?" in services["jupyter"]["command"]


def _compose_config(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), **environment},
        cwd="/",
    )


needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (Debian package docker-compose)",
)


@needs_compose
def test_docker_compose_resolves_the_file_and_publishes_only_three_ports():
    result = _compose_config({name: f"secret-{name.lower()}" for name in COMPOSE_SECRETS})

    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    published = {
        name: sorted(str(port["published"]) for port in service.get("ports", []))
        for name, service in resolved.items()
        if service.get("ports")
    }
    assert published == {"dashboard": ["8501"], "grafana": ["3000"], "jupyter": ["8888"]}


@needs_compose
def test_docker_compose_refuses_to_start_without_a_secret_and_names_it():
    given = {name: "x" for name in COMPOSE_SECRETS if name != "GRAFANA_ADMIN_PASSWORD"}

    result = _compose_config(given)

    assert result.returncode != 0
    assert "set GRAFANA_ADMIN_PASSWORD in .env" in result.stderr
