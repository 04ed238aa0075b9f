"""docker-compose.yml and the Dockerfile, checked without a Docker engine: valid against the
compose specification, every file they name exists, and every service's command, port and
environment match what the code reads (the settings classes and the command-line parser);
least privilege: a database role and a Kafka SCRAM user per service, ACLs that are exactly what
the code produces and consumes, secrets only where they are used."""

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

from services.cli import build_parser
from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
from services.metrics.settings import MetricsSettings
from services.referrals.entrypoints.consumer import CONSUMERS as REFERRALS_CONSUMERS
from services.referrals.settings import ReferralsSettings
from services.registrations.settings import RegistrationsSettings
from services.registry import SERVICES
from shared.db_roles import SERVICE_ROLES
from shared.events import EventData, Topic
from shared.settings import KNOWN_PLACEHOLDERS, AdminSettings, CommonSettings, ServiceSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "registrations": RegistrationsSettings,
    "referrals": ReferralsSettings,
    "metrics": MetricsSettings,
}
CONTRACT_PORTS = {"registrations": 8001, "referrals": 8002, "metrics": 8003}  # contract.md
SECRETS = (
    "VERBINDING_PSEUDONYM_SECRET",
    "POSTGRES_PASSWORD",
    "REGISTRATIONS_DB_PASSWORD",
    "REFERRALS_DB_PASSWORD",
    "METRICS_DB_PASSWORD",
    "KAFKA_ADMIN_PASSWORD",
    "KAFKA_REGISTRATIONS_PASSWORD",
    "KAFKA_REFERRALS_PASSWORD",
    "KAFKA_METRICS_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)
ACLS = REPO / "deploy" / "kafka" / "acls.txt"
KAFKA_ADMIN_USER = "verbinding-admin"
WRITING = ("registrations", "referrals")
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
    return _interpolate(_raw(), _secrets_used())  # type: ignore[no-any-return]


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
        with pytest.raises(KeyError, match=name):
            _interpolate(_raw(), {k: v for k, v in _secrets().items() if k != name})
    for placeholder in KNOWN_PLACEHOLDERS:
        assert placeholder not in text
    # scripts/compose-env writes exactly these (and the docs tell a newcomer to run it).
    script = (REPO / "scripts" / "compose-env").read_text(encoding="utf-8")
    assert set(re.findall(r"\b[A-Z][A-Z_]+(?:SECRET|PASSWORD)\b", script)) == set(SECRETS)


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
        assert args.port == SERVICES[name].port
        assert svc["environment"]["VERBINDING_PORT"] == str(args.port), "the healthcheck port"
        assert svc["ports"] == [f"127.0.0.1:{args.port}:{args.port}"]
        assert svc["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    migrate = parser.parse_args(services["migrate"]["command"])
    assert migrate.command == "migrate"
    assert migrate.services == list(SERVICES)


def _uses_of(env: dict[str, Any], raw_env: dict[str, Any]) -> set[str]:
    """The .env variables a service's environment interpolates."""
    return {m["name"] for v in raw_env.values() for m in VARIABLE.finditer(str(v)) if m["name"]}


def test_secrets_reach_only_the_processes_that_use_them() -> None:
    raw = _raw()["services"]
    for name, svc in _verbinding_services().items():
        used = _uses_of(svc["environment"], raw[name]["environment"])
        pseudonymises = name in WRITING
        assert ("VERBINDING_PSEUDONYM_SECRET" in used) == pseudonymises, name
        assert ("POSTGRES_PASSWORD" in used) == (name == "migrate"), f"{name}: the admin's password"
        assert ("KAFKA_ADMIN_PASSWORD" in used) == (name == "migrate"), name
        for other in SERVICES:
            if other != name and name != "migrate":
                assert f"{other.upper()}_DB_PASSWORD" not in used, f"{name} knows {other}'s"
                assert f"KAFKA_{other.upper()}_PASSWORD" not in used, f"{name} knows {other}'s"
        assert "VERBINDING_DATABASE_URL" not in svc["environment"] or name == "migrate", name


def test_environment_is_what_the_settings_read_and_validates_in_production(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, svc in _verbinding_services().items():
        settings_class: type[CommonSettings] = SETTINGS.get(name, AdminSettings)
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
        kafka = settings.kafka()
        assert kafka.bootstrap == "kafka:19092"
        assert kafka.security_protocol == "SASL_PLAINTEXT"
        assert kafka.sasl_mechanism == "SCRAM-SHA-512"
        assert settings.database_url.endswith("@postgres:5432/verbinding")
        if name == "migrate":
            assert isinstance(settings, AdminSettings)
            assert settings.database_url.startswith("postgresql://verbinding:")
            assert kafka.username == KAFKA_ADMIN_USER
            # migrate gives every service role the password of that service's DSN
            passwords = settings.role_passwords()
            for service in SERVICES:
                assert passwords[service] == _secrets_used()[f"{service.upper()}_DB_PASSWORD"]
                assert (
                    settings.service_database_url(service)
                    == (
                        _verbinding_services()[service]["environment"][
                            f"VERBINDING_{service.upper()}_DATABASE_URL"
                        ]
                    )
                )
        else:
            assert settings.database_url.startswith(f"postgresql://{SERVICE_ROLES[name]}:")
            assert kafka.username == f"verbinding-{name}"
        for key in env:
            clean_env.delenv(key)


_SECRETS_USED: dict[str, str] = {}


def _secrets_used() -> dict[str, str]:
    """One set of secrets for the whole module, so that values can be compared across calls."""
    if not _SECRETS_USED:
        _SECRETS_USED.update(_secrets())
    return _SECRETS_USED


def test_service_addresses_match_their_servers() -> None:
    services = _resolved()["services"]
    kafka = services["kafka"]["environment"]
    assert "INTERNAL://kafka:19092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:29093"
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


# ------------------------------------------------------------------------ Kafka: SASL, ACLs


def _listeners(spec: str) -> dict[str, str]:
    """``NAME://host:port,...`` as {name: host:port}."""
    out = {}
    for item in spec.split(","):
        name, _, address = item.partition("://")
        out[name] = address
    return out


def test_kafka_requires_sasl_everywhere_but_its_own_loopback() -> None:
    kafka = _resolved()["services"]["kafka"]
    env = kafka["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    bound = _listeners(env["KAFKA_LISTENERS"])
    assert set(bound) == set(protocols)
    for name, address in bound.items():
        if protocols[name] == "PLAINTEXT":
            # Only processes in the broker's own network namespace reach these.
            assert address.startswith("127.0.0.1:"), f"{name} is PLAINTEXT on {address}"
        else:
            assert protocols[name] == "SASL_PLAINTEXT", name
            assert env[f"KAFKA_LISTENER_NAME_{name}_SCRAM___SHA___512_SASL_JAAS_CONFIG"].startswith(
                "org.apache.kafka.common.security.scram.ScramLoginModule required"
            )
    published = {p.rsplit(":", 1)[1] for p in kafka["ports"]}
    reachable = {a.rsplit(":", 1)[1] for n, a in bound.items() if protocols[n] != "PLAINTEXT"}
    assert published <= reachable, "a published port must be a SASL listener"
    assert protocols[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "PLAINTEXT"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith(".StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:ANONYMOUS", "the loopback listeners' principal only"
    loopback = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])["BROKER"]
    assert loopback in kafka["healthcheck"]["test"][1]
    setup = _resolved()["services"]["kafka-setup"]
    assert setup["network_mode"] == "service:kafka"
    script = (REPO / "deploy/kafka/setup.sh").read_text(encoding="utf-8")
    assert f"BOOTSTRAP={loopback}" in script


def _acl_table() -> set[tuple[str, str, str, str]]:
    rows = set()
    for line in ACLS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            user, operation, resource, name = line.split()
            rows.add((user, operation, resource, name))
    return rows


def _written_topics(service: str) -> set[str]:
    """The topics of the events a writing service's decisions build (what its relay publishes)."""
    import importlib

    decisions = importlib.import_module(f"services.{service}.domain.decide")
    written = {
        obj.topic.value
        for obj in vars(decisions).values()
        if isinstance(obj, type) and issubclass(obj, EventData) and obj is not EventData
    }
    # A service that erases people publishes their erasure events (shared/erasure.py).
    if getattr(importlib.import_module(f"services.{service}.bootstrap"), "ERASABLE", None):
        written.add(Topic.ERASURES.value)
    return written


def test_each_service_user_may_do_exactly_what_its_code_does() -> None:
    acls = _acl_table()
    services = _verbinding_services()
    expected = {
        ("verbinding-registrations", "Write", "topic", t) for t in _written_topics("registrations")
    }
    expected |= {
        ("verbinding-referrals", "Write", "topic", t) for t in _written_topics("referrals")
    }
    # The referrals service's consumers: their topics, their groups (as compose names them),
    # and the deadletter topic for what they cannot apply.
    referrals_env = services["referrals"]["environment"]
    for _, topics, group_setting in REFERRALS_CONSUMERS:
        expected |= {("verbinding-referrals", "Read", "topic", t.value) for t in topics}
        group = referrals_env[f"VERBINDING_{group_setting.upper()}"]
        expected.add(("verbinding-referrals", "Read", "group", group))
    expected.add(("verbinding-referrals", "Write", "topic", Topic.DEADLETTER.value))
    group = services["metrics"]["environment"]["VERBINDING_CONSUMER_GROUP"]
    expected |= {("verbinding-metrics", "Read", "topic", t.value) for t in CONSUMED_TOPICS}
    expected |= {
        ("verbinding-metrics", "Write", "topic", Topic.DEADLETTER.value),
        ("verbinding-metrics", "Read", "group", group),
    }
    # The operator: creates every topic (migrate), replays the consumed ones (rebuild).
    expected |= {(KAFKA_ADMIN_USER, "Create", "topic", t.value) for t in Topic}
    expected |= {(KAFKA_ADMIN_USER, "Read", "topic", t.value) for t in CONSUMED_TOPICS}
    expected |= {
        (KAFKA_ADMIN_USER, "Describe", "topic", t.value)
        for t in Topic
        if t not in CONSUMED_TOPICS  # Read implies Describe
    }
    # `verbinding retention run` sets the dead letters' retention (docs/privacy.md).
    expected.add((KAFKA_ADMIN_USER, "AlterConfigs", "topic", Topic.DEADLETTER.value))
    assert acls == expected
    assert _written_topics("registrations") == {"activities", "registrations", "erasures"}
    assert _written_topics("referrals") == {"referrals", "trainings", "measurements", "erasures"}
    # Every user with an ACL gets its password from kafka-setup, and the service that logs in
    # as that user is handed the same .env variable.
    setup_env = _raw()["services"]["kafka-setup"]["environment"]
    raw = _raw()["services"]
    for user in {row[0] for row in acls}:
        variable = f"KAFKA_{user.removeprefix('verbinding-').upper()}_PASSWORD"
        assert variable in setup_env, user
        logged_in = [
            n
            for n, s in services.items()
            if s["environment"].get("VERBINDING_KAFKA_USERNAME") == user
        ]
        assert len(logged_in) == 1, user
        assert variable in str(raw[logged_in[0]]["environment"]["VERBINDING_KAFKA_PASSWORD"])


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
        "kafka-setup": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
    }
    assert services["kafka-setup"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}


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
