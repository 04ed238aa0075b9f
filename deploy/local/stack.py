#!/usr/bin/env python3
"""Local development stack: a real Kafka broker (KRaft), PostgreSQL and the three services.

No Docker: Kafka runs from its Maven Central jars (see deploy/local/kafka/pom.xml), PostgreSQL
from the Debian server binaries, the services from the project's venv. Standard library only,
because this runs before the venv exists (scripts/bootstrap calls `fetch-kafka`).

    python3 deploy/local/stack.py up [--services]   start what is not running, print addresses
    python3 deploy/local/stack.py down              stop services, Kafka, PostgreSQL
    python3 deploy/local/stack.py status
    python3 deploy/local/stack.py env               `eval "$(python3 deploy/local/stack.py env)"`

Building blocks for tests: kafka-start, kafka-stop, kafka-kill, pg-start, pg-stop, pg-crash,
service-start <name>, service-stop <name>, fetch-kafka.

Settings (environment variables, defaults in brackets): VERBINDING_STATE_DIR [<repo>/.local],
VERBINDING_KAFKA_PORT [9092], VERBINDING_KAFKA_CONTROLLER_PORT [9093], VERBINDING_PG_PORT [55432],
VERBINDING_DATABASE_URL [unset: start a project-local PostgreSQL; set: use that server],
VERBINDING_REGISTRATIONS_PORT [8001], VERBINDING_REFERRALS_PORT [8002],
VERBINDING_METRICS_PORT [8003], VERBINDING_START_TIMEOUT [60 seconds],
VERBINDING_KAFKA_LIB [unset: <state>/kafka/lib, filled by Maven; set: a folder that already
holds the broker's jars, used as is, e.g. a test's private broker reusing the main checkout's].
Everything listens on 127.0.0.1 only.

Secrets: on its first start the stack generates the pseudonym master secret (32 random bytes,
hex) into <state>/secrets/pseudonym-secret (mode 0600) and hands it to the services that
pseudonymise as VERBINDING_PSEUDONYM_SECRET; one set in the environment wins (the fault suite
sets its own). `env` never prints it. The database: `verbinding migrate` (run by `make up`)
creates a role per service; the services connect as their role (PostgreSQL trusts 127.0.0.1
here), Kafka stays PLAINTEXT on 127.0.0.1 (docs/privacy.md).
"""
# ruff: noqa: S603  (a launcher: every subprocess is a fixed program with arguments we build)

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import functools
import glob
import hashlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[2]
POM = SCRIPT.parent / "kafka" / "pom.xml"
HOST = "127.0.0.1"
SERVICES = ("registrations", "referrals", "metrics")
DEFAULT_SERVICE_PORTS = {"registrations": 8001, "referrals": 8002, "metrics": 8003}
DATABASE = "verbinding"
# The services that pseudonymise, and so get the master secret (metrics never needs it).
PSEUDONYMISING = ("registrations", "referrals")
POLL = 0.2
# PostgreSQL beyond its defaults, for the metrics consumer's write load (docs/scale.md says why
# and what production takes). The default 128 MB of shared buffers is smaller than the facts'
# indexes at a million events, so every insert read and wrote pages from the OS; a checkpoint
# every 5 minutes or 1 GB of WAL, each followed by a full-page image of every page touched again,
# doubled the WAL; compressing those images costs little CPU. Durability is untouched
# (fsync and synchronous_commit stay on).
PG_SETTINGS = {
    "shared_buffers": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "wal_compression": "lz4",
}
LOG_TAIL_LINES = 60

LOG4J2 = """\
# Written by deploy/local/stack.py. Broker output goes to stdout (redirected to broker.log).
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


class StackError(Exception):
    """A failure with a message for the user; the command exits non-zero."""


def say(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------- settings


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not an integer") from None


def local_dsn(port: int) -> str:
    return f"postgresql://postgres@{HOST}:{port}/{DATABASE}"


@dataclass(frozen=True)
class Config:
    state: Path
    kafka_port: int
    controller_port: int
    pg_port: int
    external_dsn: str | None
    service_ports: dict[str, int]
    timeout: float
    kafka_lib_override: Path | None = None

    @classmethod
    def from_env(cls) -> Config:
        state = Path(os.environ.get("VERBINDING_STATE_DIR") or REPO / ".local")
        pg_port = _int_env("VERBINDING_PG_PORT", 55432)
        dsn = os.environ.get("VERBINDING_DATABASE_URL") or None
        if dsn == local_dsn(pg_port):
            dsn = None  # what `env` exports for our own server (a shell that ran `eval`)
        return cls(
            state=state.expanduser().resolve(),
            kafka_port=_int_env("VERBINDING_KAFKA_PORT", 9092),
            controller_port=_int_env("VERBINDING_KAFKA_CONTROLLER_PORT", 9093),
            pg_port=pg_port,
            external_dsn=dsn,
            service_ports={
                name: _int_env(f"VERBINDING_{name.upper()}_PORT", port)
                for name, port in DEFAULT_SERVICE_PORTS.items()
            },
            timeout=float(os.environ.get("VERBINDING_START_TIMEOUT") or 60),
            kafka_lib_override=(
                Path(os.environ["VERBINDING_KAFKA_LIB"]).expanduser().resolve()
                if os.environ.get("VERBINDING_KAFKA_LIB")
                else None
            ),
        )

    # paths
    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    @property
    def kafka_dir(self) -> Path:
        return self.state / "kafka"

    @property
    def kafka_lib(self) -> Path:
        return self.kafka_lib_override or self.kafka_dir / "lib"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "broker.log"

    @property
    def kafka_pid(self) -> Path:
        return self.run_dir / "kafka.pid"

    @property
    def pg_dir(self) -> Path:
        return self.state / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_sock(self) -> Path:
        return self.pg_dir / "sock"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

    @property
    def secret_file(self) -> Path:
        return self.state / "secrets" / "pseudonym-secret"

    def service_pid(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def service_log(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    # addresses
    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def dsn(self) -> str:
        return self.external_dsn or local_dsn(self.pg_port)

    def service_url(self, name: str) -> str:
        return f"http://{HOST}:{self.service_ports[name]}"

    def env(self) -> dict[str, str]:
        env = {
            "VERBINDING_KAFKA_BOOTSTRAP": self.bootstrap,
            "VERBINDING_DATABASE_URL": self.dsn,
        }
        for name in SERVICES:
            env[f"VERBINDING_{name.upper()}_URL"] = self.service_url(name)
        env["VERBINDING_STATE_DIR"] = str(self.state)
        return env


# --------------------------------------------------------------------------- process helpers


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (PID 1 here may not reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid(path: Path, *markers: str) -> int | None:
    """The pid in `path` if that process is alive and each of `markers` is one of its command
    line arguments (guards against a recycled pid). A stale pid file is removed."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        if path.exists():
            path.unlink(missing_ok=True)
        return None
    if pid_alive(pid) and set(markers) <= set(pid_cmdline(pid)):
        return pid
    say(f"  removing stale pid file {path} (pid {pid} is gone or is another program)")
    path.unlink(missing_ok=True)
    return None


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something listens on ``port``. A port inside the kernel's ephemeral range (the
    default PostgreSQL port 55432 is; Linux's is 32768-60999) can answer a connect with nothing
    listening: when the kernel picks that very port as the client's own, TCP connects the socket
    to itself, and while it lives the server cannot bind it (seen 2026-12-05: a broker that
    exited with "Address already in use" right after this check said it was ready). Such a
    connection is not an answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            return conn.getsockname() != conn.getpeername()
    except OSError:
        return False


def log_offset(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def print_log_tail(path: Path, since: int = 0, lines: int = LOG_TAIL_LINES) -> None:
    try:
        with path.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
    except OSError as exc:
        say(f"  (no log at {path}: {exc.strerror})")
        return
    tail = text.splitlines()[-lines:]
    say(f"---- last {len(tail)} lines of {path} ----")
    for line in tail:
        say(line)
    say("---- end of log ----")


def root_cause(path: Path, since: int) -> str:
    """The innermost `Caused by:` of the last Java stack trace in the log since `since`."""
    try:
        with path.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    causes = [line.strip() for line in text.splitlines() if line.startswith("Caused by: ")]
    return f" ({causes[-1]})" if causes else ""


def spawn(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `cmd` detached (own session), stdout+stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(
            f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} stack.py: {shlex.join(cmd)}\n".encode()
        )
        fh.flush()
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by `pid` (all our daemons start their own session), or the
    process alone if it has no group of its own."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def terminate(pid: int, what: str, grace: float) -> None:
    """SIGTERM, a bounded wait, then SIGKILL."""
    started = time.monotonic()
    signal_group(pid, signal.SIGTERM)
    if wait_dead(pid, grace):
        say(f"  {what} (pid {pid}) stopped in {time.monotonic() - started:.1f}s")
        return
    say(f"  {what} (pid {pid}) still running after {grace:.0f}s: SIGKILL")
    signal_group(pid, signal.SIGKILL)
    if not wait_dead(pid, 10):
        raise StackError(f"{what} (pid {pid}) survived SIGKILL")


@contextlib.contextmanager
def state_lock(cfg: Config) -> Iterator[None]:
    """Serialise commands that start or stop things (parallel test workers, two shells)."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.run_dir / "stack.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------- secrets


def pseudonym_secret(cfg: Config) -> str:
    """The stack's pseudonym master secret, generated on first use and kept owner-only.

    Never a value from the source: a key anybody can read would pseudonymise nothing. Changing
    the file changes every pseudonym, so it is created once and then only read."""
    path = cfg.secret_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            say(f"  {path} was readable by others: made owner-only (0600)")
            path.chmod(0o600)
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise StackError(
                f"{path} holds no usable secret (under 32 characters); restore it from a "
                "backup, or remove it to generate a new one (which changes every pseudonym)"
            ) from None
        return secret
    secret = secrets.token_hex(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    say(f"pseudonym secret: generated {path} (0600); back it up with the database")
    return secret


# ------------------------------------------------------------------------------------ kafka


def java_bin() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise StackError("java not found: run scripts/bootstrap (installs openjdk-17-jdk-headless)")
    return java


def fetch_kafka(cfg: Config) -> None:
    """Copy the broker's jars into <state>/kafka/lib with Maven, unless the pom is unchanged."""
    if cfg.kafka_lib_override is not None:
        if not any(cfg.kafka_lib.glob("kafka_2.13-*.jar")):
            raise StackError(
                f"VERBINDING_KAFKA_LIB={cfg.kafka_lib} holds no kafka_2.13-*.jar; point it at "
                "a folder `stack.py fetch-kafka` filled, or unset it"
            )
        say(f"kafka jars: using {cfg.kafka_lib} (VERBINDING_KAFKA_LIB)")
        return
    stamp = cfg.kafka_dir / "lib.sha256"
    digest = sha256_file(POM)
    have_jars = cfg.kafka_lib.is_dir() and any(cfg.kafka_lib.glob("kafka_2.13-*.jar"))
    if have_jars and stamp.exists() and stamp.read_text().strip() == digest:
        say(f"kafka jars: up to date in {cfg.kafka_lib}")
        return
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("mvn not found: run scripts/bootstrap (installs maven)")
    cfg.kafka_dir.mkdir(parents=True, exist_ok=True)
    new = cfg.kafka_dir / "lib.new"
    shutil.rmtree(new, ignore_errors=True)
    say(f"kafka jars: fetching with Maven into {cfg.kafka_lib} (first time ~1 min) ...")
    started = time.monotonic()
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={new}",
        ],
        cwd=POM.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not any(new.glob("kafka_2.13-*.jar")):
        say((result.stdout + result.stderr)[-6000:])
        shutil.rmtree(new, ignore_errors=True)
        raise StackError(f"mvn dependency:copy-dependencies failed (exit {result.returncode})")
    if read_pid(cfg.kafka_pid, "kafka.Kafka"):
        say("  note: the running broker keeps the old jars until it is restarted")
    shutil.rmtree(cfg.kafka_lib, ignore_errors=True)
    new.rename(cfg.kafka_lib)
    stamp.write_text(digest + "\n")
    jars = len(list(cfg.kafka_lib.glob("*.jar")))
    say(f"kafka jars: {jars} jars in {time.monotonic() - started:.0f}s")


def kafka_properties(cfg: Config) -> str:
    ctrl = f"{HOST}:{cfg.controller_port}"
    return f"""\
# Generated by deploy/local/stack.py on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={ctrl}
listeners=PLAINTEXT://{HOST}:{cfg.kafka_port},CONTROLLER://{ctrl}
advertised.listeners=PLAINTEXT://{HOST}:{cfg.kafka_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={cfg.kafka_data}
num.partitions=4
auto.create.topics.enable=true
# Topics are replayed from the beginning: keep everything.
log.retention.ms=-1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


def random_cluster_id() -> str:
    """What `StorageTool random-uuid` prints: 16 random bytes as URL-safe base64 without
    padding; like Kafka's Uuid.randomUuid(), never one that starts with '-' (it would read as
    an option on a command line)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_format(cfg: Config, java: str, props: Path) -> None:
    """Format the KRaft storage once; later starts reuse it (and its topics)."""
    meta = cfg.kafka_data / "meta.properties"
    id_file = cfg.kafka_dir / "cluster.id"
    if meta.exists():
        if not id_file.exists():
            match = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.MULTILINE)
            if match:
                id_file.write_text(match.group(1) + "\n")
        return
    if cfg.kafka_data.exists() and any(cfg.kafka_data.iterdir()):
        say(f"  {cfg.kafka_data} has no meta.properties (an interrupted format?): clearing it")
        shutil.rmtree(cfg.kafka_data)
    cfg.kafka_data.mkdir(parents=True, exist_ok=True)
    if id_file.exists() and id_file.read_text().strip():
        cluster_id = id_file.read_text().strip()
    else:
        cluster_id = random_cluster_id()
        id_file.write_text(cluster_id + "\n")
    say(f"  formatting KRaft storage in {cfg.kafka_data} (cluster id {cluster_id})")
    result = subprocess.run(
        [
            java,
            "-cp",
            f"{cfg.kafka_lib}/*",
            f"-Dlog4j2.configurationFile={cfg.kafka_dir / 'log4j2.properties'}",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
            "--standalone",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not meta.exists():
        say(result.stdout + result.stderr)
        raise StackError(f"kafka StorageTool format failed (exit {result.returncode})")


def kafka_start(cfg: Config, timeout: float) -> None:
    pid = read_pid(cfg.kafka_pid, "kafka.Kafka")
    if pid is not None:
        if port_open(cfg.kafka_port):
            say(f"kafka: already running (pid {pid}) on {cfg.bootstrap}")
            return
        say(f"kafka: pid {pid} is alive but {cfg.bootstrap} does not answer yet: waiting")
        _wait_kafka(cfg, pid, None, timeout, log_from=0, started=time.monotonic())
        return
    for port in (cfg.kafka_port, cfg.controller_port):
        if port_open(port):
            raise StackError(
                f"kafka: port {HOST}:{port} is already in use by another process "
                "(not a broker this script started); free it or set "
                "VERBINDING_KAFKA_PORT / VERBINDING_KAFKA_CONTROLLER_PORT"
            )
    fetch_kafka(cfg)
    java = java_bin()
    cfg.kafka_dir.mkdir(parents=True, exist_ok=True)
    log4j = cfg.kafka_dir / "log4j2.properties"
    log4j.write_text(LOG4J2)
    props = cfg.kafka_dir / "server.properties"
    props.write_text(kafka_properties(cfg))
    kafka_format(cfg, java, props)
    cmd = [
        java,
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{cfg.kafka_lib}/*",
        "kafka.Kafka",
        str(props),
    ]
    log_from = log_offset(cfg.kafka_log)
    started = time.monotonic()
    proc = spawn(cmd, cfg.kafka_log, cwd=cfg.kafka_dir)
    write_pid(cfg.kafka_pid, proc.pid)
    say(f"kafka: started pid {proc.pid}, waiting for {cfg.bootstrap} ...")
    _wait_kafka(cfg, proc.pid, proc, timeout, log_from, started)


def _wait_kafka(
    cfg: Config,
    pid: int,
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    log_from: int,
    started: float,
) -> None:
    deadline = started + timeout
    while True:
        dead = proc.poll() is not None if proc is not None else not pid_alive(pid)
        if dead:
            code = f" with exit code {proc.returncode}" if proc is not None else ""
            cfg.kafka_pid.unlink(missing_ok=True)
            print_log_tail(cfg.kafka_log, log_from)
            cause = root_cause(cfg.kafka_log, log_from)
            raise StackError(
                f"kafka: broker (pid {pid}) exited{code} during start-up after "
                f"{time.monotonic() - started:.1f}s{cause}; log: {cfg.kafka_log}"
            )
        if port_open(cfg.kafka_port, timeout=0.2):
            say(f"kafka: ready on {cfg.bootstrap} in {time.monotonic() - started:.1f}s")
            return
        if time.monotonic() >= deadline:
            print_log_tail(cfg.kafka_log, log_from)
            raise StackError(
                f"kafka: {cfg.bootstrap} did not answer within {timeout:.0f}s "
                f"(pid {pid} left running; `stack.py kafka-stop` stops it)"
            )
        time.sleep(POLL)


def kafka_stop(cfg: Config, grace: float = 30.0) -> None:
    pid = read_pid(cfg.kafka_pid, "kafka.Kafka")
    if pid is None:
        say("kafka: not running")
        return
    say(f"kafka: stopping pid {pid} (SIGTERM, up to {grace:.0f}s) ...")
    terminate(pid, "kafka", grace)
    cfg.kafka_pid.unlink(missing_ok=True)


def kafka_kill(cfg: Config) -> None:
    pid = read_pid(cfg.kafka_pid, "kafka.Kafka")
    if pid is None:
        say("kafka: not running")
        return
    signal_group(pid, signal.SIGKILL)
    if not wait_dead(pid, 10):
        raise StackError(f"kafka (pid {pid}) survived SIGKILL")
    cfg.kafka_pid.unlink(missing_ok=True)
    say(f"kafka: killed pid {pid} (SIGKILL)")


# ------------------------------------------------------------------------------- postgresql


def pg_bindir() -> Path:
    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(x) for x in re.findall(r"\d+", name)) or (0,)

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if not found:
        raise StackError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "run scripts/bootstrap (installs the Debian package postgresql)"
        )
    return Path(found[-1]).parent


def as_postgres(cmd: list[str]) -> list[str]:
    """initdb, pg_ctl and postgres refuse root: run them as the postgres system user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def pg_owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "no 'postgres' system user: install the Debian package postgresql (scripts/bootstrap)"
        ) from None
    return entry.pw_uid, entry.pw_gid


def pg_prepare_dirs(cfg: Config) -> None:
    owner = pg_owner()
    for path in (cfg.pg_dir, cfg.pg_data, cfg.pg_sock):
        path.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            os.chown(path, *owner)
    cfg.pg_data.chmod(0o700)
    if owner is None:
        return
    # The postgres user must be able to reach <state>/pg: every parent needs the search bit.
    for parent in cfg.pg_dir.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            say(
                f"  note: adding o+x (search only) to {parent} so that user postgres can reach "
                f"{cfg.pg_dir}"
            )
            parent.chmod(mode | 0o001)


def pg_run(cfg: Config, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        as_postgres(cmd),
        cwd=cfg.pg_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        say(result.stdout + result.stderr)
        raise StackError(f"{Path(cmd[0]).name} failed (exit {result.returncode})")
    return result


def pg_initdb(cfg: Config, bindir: Path) -> None:
    if (cfg.pg_data / "PG_VERSION").exists():
        return
    say(f"  initdb {cfg.pg_data}")
    base = [
        str(bindir / "initdb"),
        "-D",
        str(cfg.pg_data),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
    ]
    # Text compares byte by byte ("C"): the facts' keys are ASCII ids and 64-digit pseudonyms,
    # whose every index insert and sort compared them with strcoll under C.UTF-8 (about 9% of
    # an insert into a pseudonym index, docs/benchmarks.md); C.UTF-8 orders by code point,
    # which is UTF-8's byte order, so no order changes. Character classes stay C.UTF-8's.
    result = pg_run(cfg, [*base, "--locale=C.UTF-8", "--lc-collate=C"], check=False)
    if result.returncode != 0:
        if "locale" not in (result.stdout + result.stderr).lower():
            say(result.stdout + result.stderr)
            raise StackError(f"initdb failed (exit {result.returncode})")
        say("  locale C.UTF-8 unavailable: initdb --no-locale")
        for child in cfg.pg_data.iterdir():  # initdb may leave files behind
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        pg_run(cfg, [*base, "--no-locale"])


def pg_postmaster_pid(cfg: Config) -> int | None:
    try:
        pid = int((cfg.pg_data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def pg_isready(bindir: Path, port: int) -> bool:
    result = subprocess.run(
        [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-t", "1"],
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def psql(bindir: Path, port: int, sql: str, db: str = "postgres") -> str:
    result = subprocess.run(
        [
            str(bindir / "psql"),
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            HOST,
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def pg_ensure_database(cfg: Config, bindir: Path) -> None:
    if psql(bindir, cfg.pg_port, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):
        return
    psql(bindir, cfg.pg_port, f"CREATE DATABASE {DATABASE}")
    say(f"  created database {DATABASE}")


def pg_start(cfg: Config, timeout: float) -> None:
    if cfg.external_dsn:
        say(
            f"postgresql: VERBINDING_DATABASE_URL is set, using that server ({cfg.dsn}); "
            "no local PostgreSQL started"
        )
        return
    bindir = pg_bindir()
    pid = pg_postmaster_pid(cfg)
    if pid is not None and pg_isready(bindir, cfg.pg_port):
        say(f"postgresql: already running (pid {pid}) on {HOST}:{cfg.pg_port}")
        pg_ensure_database(cfg, bindir)
        return
    if pid is None and port_open(cfg.pg_port):
        raise StackError(
            f"postgresql: port {HOST}:{cfg.pg_port} is already in use by another "
            "process; free it or set VERBINDING_PG_PORT"
        )
    started = time.monotonic()
    log_from = log_offset(cfg.pg_log)
    if pid is None:
        pg_prepare_dirs(cfg)
        pg_initdb(cfg, bindir)
        opts = (
            f"-p {cfg.pg_port} -k {cfg.pg_sock} -c listen_addresses={HOST} -c max_connections=200 "
            + " ".join(f"-c {name}={value}" for name, value in PG_SETTINGS.items())
        )
        # -w: pg_ctl itself watches the postmaster and returns as soon as it is ready or dead.
        result = pg_run(
            cfg,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(cfg.pg_data),
                "-l",
                str(cfg.pg_log),
                "-o",
                opts,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            check=False,
        )
        if result.returncode != 0:
            say((result.stdout + result.stderr).strip())
            print_log_tail(cfg.pg_log, log_from)
            raise StackError(
                f"postgresql: pg_ctl start failed (exit {result.returncode}); log: {cfg.pg_log}"
            )
        say(f"postgresql: started pid {pg_postmaster_pid(cfg)}, waiting for {HOST}:{cfg.pg_port}")
    else:
        say(f"postgresql: pid {pid} is alive but not accepting connections yet: waiting")
    deadline = started + timeout
    while not pg_isready(bindir, cfg.pg_port):
        if pg_postmaster_pid(cfg) is None:
            print_log_tail(cfg.pg_log, log_from)
            raise StackError(f"postgresql: server exited during start-up; log: {cfg.pg_log}")
        if time.monotonic() >= deadline:
            print_log_tail(cfg.pg_log, log_from)
            raise StackError(f"postgresql: {HOST}:{cfg.pg_port} not ready within {timeout:.0f}s")
        time.sleep(POLL)
    pg_ensure_database(cfg, bindir)
    say(f"postgresql: ready on {HOST}:{cfg.pg_port} in {time.monotonic() - started:.1f}s")


def pg_stop(cfg: Config, mode: str = "fast") -> None:
    """``mode``: pg_ctl's; ``immediate`` is a crash (no checkpoint: recovery replays the WAL at
    the next start, and commits made without waiting for their WAL may be gone)."""
    if cfg.external_dsn:
        say("postgresql: external server (VERBINDING_DATABASE_URL), left alone")
        return
    pid = pg_postmaster_pid(cfg)
    if pid is None:
        say("postgresql: not running")
        return
    bindir = pg_bindir()
    started = time.monotonic()
    result = pg_run(
        cfg,
        [str(bindir / "pg_ctl"), "-D", str(cfg.pg_data), "-m", mode, "-w", "-t", "60", "stop"],
        check=False,
    )
    if result.returncode != 0 and pg_postmaster_pid(cfg) is not None:
        say((result.stdout + result.stderr).strip())
        raise StackError(f"postgresql: pg_ctl stop failed (exit {result.returncode})")
    say(f"postgresql: stopped pid {pid} in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------------- services


def service_pid(cfg: Config, name: str) -> int | None:
    # The command line is `.../verbinding serve <name> --host ... --port ...`.
    return read_pid(cfg.service_pid(name), "serve", name)


def healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check_service(name: str) -> None:
    if name not in SERVICES:
        raise StackError(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")


def service_env(cfg: Config, name: str) -> dict[str, str]:
    """What a service process gets: this environment, the stack's addresses and, for a service
    that pseudonymises, the stack's secret (unless the environment already sets one)."""
    env = dict(os.environ)
    env.update(cfg.env())
    env.setdefault("VERBINDING_ENVIRONMENT", "development")
    if name in PSEUDONYMISING:
        if not env.get("VERBINDING_PSEUDONYM_SECRET"):
            env["VERBINDING_PSEUDONYM_SECRET"] = pseudonym_secret(cfg)
    else:
        env.pop("VERBINDING_PSEUDONYM_SECRET", None)  # least privilege: it never needs it
    env["PYTHONUNBUFFERED"] = "1"
    return env


def service_start(cfg: Config, name: str, timeout: float) -> None:
    check_service(name)
    port = cfg.service_ports[name]
    pid = service_pid(cfg, name)
    if pid is not None:
        if healthz(port):
            say(f"{name}: already running (pid {pid}) on {cfg.service_url(name)}")
            return
        say(f"{name}: pid {pid} is alive but /healthz does not answer 200 yet: waiting")
        _wait_service(cfg, name, pid, None, timeout, 0, time.monotonic())
        return
    if port_open(port):
        raise StackError(
            f"{name}: port {HOST}:{port} is already in use by another process; "
            f"free it or set VERBINDING_{name.upper()}_PORT"
        )
    exe = REPO / ".venv" / "bin" / "verbinding"
    if not exe.exists():
        raise StackError(f"{exe} not found: run scripts/bootstrap first")
    env = service_env(cfg, name)
    log = cfg.service_log(name)
    log_from = log_offset(log)
    started = time.monotonic()
    proc = spawn(
        [str(exe), "serve", name, "--host", HOST, "--port", str(port)], log, env=env, cwd=REPO
    )
    write_pid(cfg.service_pid(name), proc.pid)
    say(f"{name}: started pid {proc.pid}, waiting for {cfg.service_url(name)}/healthz ...")
    _wait_service(cfg, name, proc.pid, proc, timeout, log_from, started)


def _wait_service(
    cfg: Config,
    name: str,
    pid: int,
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    log_from: int,
    started: float,
) -> None:
    port = cfg.service_ports[name]
    log = cfg.service_log(name)
    deadline = started + timeout
    while True:
        dead = proc.poll() is not None if proc is not None else not pid_alive(pid)
        if dead:
            cfg.service_pid(name).unlink(missing_ok=True)
            print_log_tail(log, log_from)
            code = f" with exit code {proc.returncode}" if proc is not None else ""
            raise StackError(f"{name}: process {pid} exited{code} during start-up; log: {log}")
        if healthz(port):
            say(f"{name}: ready on {cfg.service_url(name)} in {time.monotonic() - started:.1f}s")
            return
        if time.monotonic() >= deadline:
            print_log_tail(log, log_from)
            raise StackError(
                f"{name}: /healthz not 200 within {timeout:.0f}s (pid {pid} left "
                f"running; `stack.py service-stop {name}` stops it)"
            )
        time.sleep(POLL)


def service_stop(cfg: Config, name: str, grace: float = 15.0) -> None:
    check_service(name)
    pid = service_pid(cfg, name)
    if pid is None:
        say(f"{name}: not running")
        return
    terminate(pid, name, grace)
    cfg.service_pid(name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- status / env


def status_rows(cfg: Config) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []

    def state(pid: int | None, answering: bool) -> str:
        if pid is None:
            return "in use by another process" if answering else "stopped"
        return "running" if answering else "not answering"

    pid = read_pid(cfg.kafka_pid, "kafka.Kafka")
    rows.append(
        (
            "kafka",
            state(pid, port_open(cfg.kafka_port)),
            str(pid or "-"),
            f"bootstrap {cfg.bootstrap} (controller {HOST}:{cfg.controller_port})",
        )
    )
    if cfg.external_dsn:
        rows.append(("postgresql", "external", "-", cfg.dsn))
    else:
        pid = pg_postmaster_pid(cfg)
        rows.append(("postgresql", state(pid, port_open(cfg.pg_port)), str(pid or "-"), cfg.dsn))
    for name in SERVICES:
        pid = service_pid(cfg, name)
        answering = healthz(cfg.service_ports[name]) if pid else port_open(cfg.service_ports[name])
        rows.append((name, state(pid, answering), str(pid or "-"), cfg.service_url(name)))
    return rows


def print_status(cfg: Config) -> None:
    rows = [("component", "state", "pid", "address"), *status_rows(cfg)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    say("")
    for row in rows:
        say(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    say(f"state dir: {cfg.state}")
    if cfg.secret_file.exists():
        say(f"pseudonym secret: {cfg.secret_file}")


def print_env(cfg: Config) -> None:
    for key, value in cfg.env().items():
        print(f"export {key}={shlex.quote(value)}")


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stack.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def timed(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="seconds to wait for readiness (default VERBINDING_START_TIMEOUT or 60)",
        )
        return p

    timed(sub.add_parser("up", help="start Kafka and PostgreSQL (and the services)")).add_argument(
        "--services", action="store_true", help="also start the three services"
    )
    sub.add_parser("down", help="stop everything this script started")
    sub.add_parser("status", help="what is running")
    sub.add_parser("env", help="print `export VAR=value` lines")
    sub.add_parser("fetch-kafka", help="copy the Kafka jars with Maven (if the pom changed)")
    timed(sub.add_parser("kafka-start"))
    sub.add_parser("kafka-stop")
    sub.add_parser("kafka-kill", help="SIGKILL the broker (fault tests)")
    timed(sub.add_parser("pg-start"))
    sub.add_parser("pg-stop")
    sub.add_parser("pg-crash", help="stop PostgreSQL as a crash would (fault tests)")
    timed(sub.add_parser("service-start")).add_argument("name", choices=SERVICES)
    sub.add_parser("service-stop").add_argument("name", choices=SERVICES)
    args = parser.parse_args(argv)

    try:
        cfg = Config.from_env()
        timeout = getattr(args, "timeout", None) or cfg.timeout
        cmd = args.command
        if cmd == "env":
            print_env(cfg)
            return 0
        if cmd == "status":
            print_status(cfg)
            return 0
        with state_lock(cfg):
            if cmd == "up":
                kafka_start(cfg, timeout)
                pg_start(cfg, timeout)
                pseudonym_secret(cfg)
                if args.services:
                    for name in SERVICES:
                        service_start(cfg, name, timeout)
                print_status(cfg)
            elif cmd == "down":
                errors: list[str] = []
                steps: list[Callable[[], None]] = [
                    *(functools.partial(service_stop, cfg, name) for name in SERVICES),
                    functools.partial(kafka_stop, cfg),
                    functools.partial(pg_stop, cfg),
                ]
                for step in steps:
                    try:
                        step()
                    except StackError as exc:
                        errors.append(str(exc))
                for leftover in cfg.run_dir.glob("*.pid.tmp"):
                    leftover.unlink(missing_ok=True)
                if errors:
                    raise StackError("; ".join(errors))
            elif cmd == "fetch-kafka":
                fetch_kafka(cfg)
            elif cmd == "kafka-start":
                kafka_start(cfg, timeout)
            elif cmd == "kafka-stop":
                kafka_stop(cfg)
            elif cmd == "kafka-kill":
                kafka_kill(cfg)
            elif cmd == "pg-start":
                pg_start(cfg, timeout)
            elif cmd == "pg-stop":
                pg_stop(cfg)
            elif cmd == "pg-crash":
                pg_stop(cfg, mode="immediate")
            elif cmd == "service-start":
                service_start(cfg, args.name, timeout)
            elif cmd == "service-stop":
                service_stop(cfg, args.name)
    except StackError as exc:
        print(f"stack.py: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `stack.py status | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
