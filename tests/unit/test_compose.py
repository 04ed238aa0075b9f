"""docker-compose.yml and the Dockerfile, checked without a Docker engine: valid against the
compose specification, every file they name exists, and every service's command, port and
environment match what the code reads (the settings classes and the command-line parser)."""

from __future__ import annotations

import json
import os
import re
import secrets
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from services.metrics.settings import MetricsSettings
from services.referrals.settings import ReferralsSettings
from services.registrations.settings import RegistrationsSettings
from shared.settings import DEV_SECRET, CommonSettings, ServiceSettings
from tools.cli import SERVICES, build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "registrations": RegistrationsSettings,
    "referrals": ReferralsSettings,
    "metrics": MetricsSettings,
}
CONTRACT_PORTS = {"registrations": 8001, "referrals": 8002, "metrics": 8003}  # contract.md
SECRETS = ("VERBINDING_PSEUDONYM_SECRET", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution, for the forms this file uses."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name = m["name"] or m["bare"]
        current = env.get(name, "")
        if m["op"] in (":?", "?") and not current:
            raise KeyError(f"{name}: {m['arg']}")
        if m["op"] in (":-", "-") and not current:
            return str(m["arg"])
        return current

    return VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


@cache
def _raw() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return doc


def _secrets() -> dict[str, str]:
    return {name: secrets.token_hex(32) for name in SECRETS}


def _resolved() -> dict[str, Any]:
    return _interpolate(_raw(), _secrets())  # type: ignore[no-any-return]


def _verbinding_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in _resolved()["services"].items()
        if svc.get("image", "").startswith("verbinding:")
    }


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("VERBINDING_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_valid_against_the_compose_specification() -> None:
    try:
        vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.fail("check-jsonschema (a dev dependency) is missing: it ships the compose schema")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(
        schema, format_checker=jsonschema.FormatChecker()
    )
    for doc in (_raw(), _resolved()):
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
        assert errors == []
    broken = _resolved()
    broken["services"]["metrics"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert list(validator.iter_errors(broken)), "the schema check cannot fail"


def test_secrets_come_from_the_environment_and_are_required() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} is not used"
        assert all(u.startswith(":?") for u in uses), f"{name} must be required, with no default"
    with pytest.raises(KeyError, match="VERBINDING_PSEUDONYM_SECRET"):
        _interpolate(
            _raw(), {k: v for k, v in _secrets().items() if k != "VERBINDING_PSEUDONYM_SECRET"}
        )
    assert DEV_SECRET not in text


def test_services_run_the_command_line_with_the_contract_ports() -> None:
    services = _verbinding_services()
    assert set(services) == {*SERVICES, "migrate"}
    parser = build_parser()
    for name in SERVICES:
        svc = services[name]
        args = parser.parse_args(svc["command"])
        assert (args.command, args.service) == ("serve", name)
        assert args.host == "0.0.0.0"  # noqa: S104 - inside the container
        assert args.port == CONTRACT_PORTS[name] == SETTINGS[name].model_fields["port"].default
        assert svc["environment"]["VERBINDING_PORT"] == str(args.port), "the healthcheck port"
        assert svc["ports"] == [f"127.0.0.1:{args.port}:{args.port}"]
        assert svc["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    migrate = parser.parse_args(services["migrate"]["command"])
    assert migrate.command == "migrate"
    assert migrate.services == list(SERVICES)


def test_environment_is_what_the_settings_read_and_validates_in_production(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, svc in _verbinding_services().items():
        settings_class: type[CommonSettings] = SETTINGS.get(name, CommonSettings)
        env = svc["environment"]
        for key in env:
            field = key.removeprefix("VERBINDING_").lower()
            assert key.startswith("VERBINDING_"), f"{name}: {key}"
            assert field in settings_class.model_fields, (
                f"{name}: {key} is not a setting of {settings_class.__name__}"
            )
        for key, value in env.items():
            clean_env.setenv(key, value)
        settings = settings_class()
        assert settings.environment == "production"
        assert settings.kafka_bootstrap == "kafka:19092"
        assert settings.database_url.startswith("postgresql://verbinding:")
        assert "@postgres:5432/verbinding" in settings.database_url
        for key in env:
            clean_env.delenv(key)
    # Why the secret has no default: production refuses the placeholder.
    clean_env.setenv("VERBINDING_ENVIRONMENT", "production")
    clean_env.setenv("VERBINDING_PSEUDONYM_SECRET", DEV_SECRET)
    with pytest.raises(ValidationError):
        CommonSettings()


def test_service_addresses_match_their_servers() -> None:
    services = _resolved()["services"]
    kafka = services["kafka"]["environment"]
    assert "INTERNAL://kafka:19092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:29093"
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == "verbinding"
    assert postgres["POSTGRES_DB"] == "verbinding"
    prometheus = yaml.safe_load(
        (REPO / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8")
    )
    targets = {
        job["job_name"]: target
        for job in prometheus["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name in SERVICES:
        assert targets[f"verbinding-{name}"] == f"{name}:{CONTRACT_PORTS[name]}"
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    datasource = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text(
            encoding="utf-8"
        )
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_prometheus_gets_the_scrape_key_as_a_secret_file_outside_git() -> None:
    """The key Prometheus sends to `/metrics` is a compose secret from secrets/ (ignored by git
    and by the image build), mounted where prometheus.yml reads it (relative to itself)."""
    resolved = _resolved()
    prometheus = resolved["services"]["prometheus"]
    (mount,) = prometheus["secrets"]
    config_mount = next(
        v.split(":")[1] for v in prometheus["volumes"] if v.endswith("/prometheus.yml:ro")
    )
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    files = {
        job["authorization"]["credentials_file"]
        for job in config["scrape_configs"]
        if "authorization" in job
    }
    assert files == {"secrets/metrics-scrape-key"}
    assert mount["target"] == str(Path(config_mount).parent / "secrets/metrics-scrape-key")
    source = resolved["secrets"][mount["source"]]["file"]
    assert source.startswith("./secrets/")
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "secrets/" in ignored
    docker_ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in docker_ignored
    assert "!secrets" not in " ".join(docker_ignored)
    for name, svc in resolved["services"].items():
        if name != "prometheus":
            assert "secrets" not in svc, f"{name} has no use for the scrape key"


def test_start_order_waits_for_healthy_dependencies() -> None:
    services = _resolved()["services"]
    for name, svc in services.items():
        for dependency, condition in svc.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                check = services[dependency].get("healthcheck", {})
                assert check.get("test"), f"{name} waits for {dependency}, which has no healthcheck"
                assert not check.get("disable"), f"{dependency}'s healthcheck is disabled"
    assert services["migrate"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }


def test_images_are_pinned_and_kafka_matches_the_local_broker() -> None:
    for name, svc in _resolved()["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        if repo == "verbinding":
            assert "build" in svc, name
            continue
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9]+)?", tag), f"{name}: pin {image}"
    pom = (REPO / "deploy/local/kafka/pom.xml").read_text(encoding="utf-8")
    local = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert local is not None
    kafka = _resolved()["services"]["kafka"]["image"]
    assert kafka == f"apache/kafka:{local[1]}"
    assert local[1].startswith("4.1.")


def test_every_mounted_file_and_build_context_exists() -> None:
    for name, svc in _resolved()["services"].items():
        if "build" in svc:
            assert (REPO / svc["build"] / "Dockerfile").is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    named = {
        v.split(":")[0] for s in _resolved()["services"].values() for v in s.get("volumes", [])
    }
    assert {n for n in named if not n.startswith(".")} == set(_resolved()["volumes"])
    grafana = _resolved()["services"]["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    mount = next(target for target in mounts if home.startswith(target + "/"))
    assert (REPO / mounts[mount] / home.removeprefix(mount + "/")).is_file()


def _stages() -> list[list[str]]:
    lines = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text(encoding="utf-8")).splitlines()
    stages: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            stages.append([])
        if stages and line.strip() and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_non_root_and_healthchecked() -> None:
    stages = _stages()
    assert len(stages) >= 2, "builder and runtime stages"
    assert "constraints.txt" in " ".join(stages[0]), "the builder installs the pinned versions"
    runtime = stages[-1]
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11(\.\d+)?-slim", text)
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users, "the runtime stage must switch to a user"
    assert users[-1].split(":")[0] not in {"0", "root"}
    healthcheck = next(line for line in runtime if line.startswith("HEALTHCHECK"))
    assert "/healthz" in healthcheck
    assert "VERBINDING_PORT" in healthcheck
    assert 'ENTRYPOINT ["verbinding"]' in runtime


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    copied = {
        src
        for stage in _stages()
        for line in stage
        if line.startswith("COPY ") and "--from=" not in line
        for src in line.split()[1:-1]
    }
    assert copied == allowed
    for path in allowed:
        assert (REPO / path).exists(), path
