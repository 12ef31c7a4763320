"""The three services, and `ensure_up` / `down` / `status` over them.

This is the Python API the tests use; `stack.cli` is a thin terminal front on it.

    from stack import services
    env = services.ensure_up(("kafka", "cassandra", "minio"))   # blocks until ready
    os.environ.update(env)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from stack import config, fetch, procs, versions
from stack.config import ENDPOINTS
from stack.layout import SERVICES, Layout

# --- errors and results --------------------------------------------------------------


@dataclass(frozen=True)
class ServiceFailure:
    service: str
    message: str  # what went wrong and what to do
    log: Path | None = None
    log_tail: str = ""


class StackError(RuntimeError):
    """One or more services could not be brought up (or down)."""

    def __init__(self, failures: list[ServiceFailure]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"{f.service}: {f.message}" for f in failures))


class _ServiceFailed(Exception):
    """Raised inside one service's worker; turned into a ServiceFailure."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


@dataclass
class ServiceResult:
    service: str
    action: str = ""  # "already running" | "started" | "was starting"
    fetched: bool = False  # downloaded or built this time
    fetch_seconds: float = 0.0
    start_seconds: float = 0.0  # spawn -> ready
    pid: int | None = None


@dataclass
class UpReport:
    results: list[ServiceResult] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    version: str
    pid: int | None
    address: str
    state: str  # running | starting | stopped | port busy
    data_dir: Path
    log_file: Path
    rss_bytes: int | None
    installed: bool  # fetched / built already


# --- progress reporting ----------------------------------------------------------------

Reporter = Callable[[str, str], None]  # (service, what it is doing now)


def _no_report(service: str, text: str) -> None:
    return None


# --- the JVM --------------------------------------------------------------------------


@functools.cache
def java_executable() -> str:
    """JAVA_HOME's java, else the one on PATH; must be JDK 17 or newer (Kafka 4 needs it)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise _ServiceFailed(
            "no `java` found. Install a JDK 17 (Debian: `apt-get install openjdk-17-jdk-headless`) "
            "or set JAVA_HOME."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = java_major_version(out)
    if major is not None and major < 17:
        raise _ServiceFailed(f"{java} is Java {major}; Kafka 4 and Cassandra 5 here need JDK 17+.")
    return java


def java_major_version(version_output: str) -> int | None:
    """17 from `openjdk version "17.0.15"`, 8 from `"1.8.0_392"`."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    first = int(match.group(1))
    return int(match.group(2) or 0) if first == 1 else first


# --- per-service specifics ----------------------------------------------------------------

# Two Maven runs writing the same ~/.m2 at once can corrupt an artifact; Go may run beside.
_MAVEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    version: str
    ports: tuple[int, ...]  # every port it binds; the first is its address
    ready_timeout: float  # seconds from spawn to ready, generous for a busy 2-core box
    install_label: str
    uses_maven: bool  # installs through Maven, which must not run twice at once
    is_installed: Callable[[Layout], bool]
    install: Callable[[Layout], bool]
    prepare: Callable[[Layout], None]
    command: Callable[[Layout], tuple[list[str], dict[str, str] | None]]
    is_ready: Callable[[Layout], bool]


def _kafka_installed(layout: Layout) -> bool:
    return fetch.maven_lib_ready(
        layout.kafka_home, config.render_pom("kafka", config.KAFKA_ARTIFACTS)
    )


def _kafka_install(layout: Layout) -> bool:
    return fetch.fetch_maven("kafka", layout.kafka_home, config.KAFKA_ARTIFACTS)


def _kafka_prepare(layout: Layout) -> None:
    run = layout.run_dir("kafka")
    layout.data_dir("kafka").mkdir(parents=True, exist_ok=True)
    (run / "server.properties").write_text(config.render_kafka_properties(layout))
    (run / "log4j2.xml").write_text(config.render_log4j2_xml())
    if (layout.data_dir("kafka") / "meta.properties").exists():
        return  # formatted before: formatting again would need the same cluster id
    id_file = run / "cluster.id"
    if not id_file.exists():
        id_file.write_text(config.new_kafka_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    format_log = run / "format.log"
    with format_log.open("wb") as out:
        done = subprocess.run(
            [java_executable(), *config.kafka_format_args(layout, cluster_id)],
            cwd=run,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if done.returncode != 0:
        raise _ServiceFailed(
            f"formatting the KRaft storage failed (exit {done.returncode}). "
            "Run `photostream stack down --wipe --only kafka` and try again.",
            log=format_log,
        )


def _kafka_command(layout: Layout) -> tuple[list[str], dict[str, str] | None]:
    return [java_executable(), *config.kafka_java_args(layout)], None


def _kafka_ready(layout: Layout) -> bool:
    # The port opens before the broker has caught up with its metadata log; the
    # "started" line comes after, when requests are really served.
    return procs.port_open(ENDPOINTS.host, ENDPOINTS.kafka_port) and procs.log_contains(
        layout.log_file("kafka"), "Kafka Server started"
    )


def _cassandra_installed(layout: Layout) -> bool:
    return fetch.maven_lib_ready(
        layout.cassandra_home, config.render_pom("cassandra", config.CASSANDRA_ARTIFACTS)
    )


def _cassandra_install(layout: Layout) -> bool:
    return fetch.fetch_maven("cassandra", layout.cassandra_home, config.CASSANDRA_ARTIFACTS)


def _cassandra_prepare(layout: Layout) -> None:
    run = layout.run_dir("cassandra")
    data = layout.data_dir("cassandra")
    for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    (run / "triggers").mkdir(exist_ok=True)  # Cassandra warns every start without it
    (run / "cassandra.yaml").write_text(config.render_cassandra_yaml(layout))
    (run / "logback.xml").write_text(config.render_logback_xml())


def _cassandra_command(layout: Layout) -> tuple[list[str], dict[str, str] | None]:
    jamm = sorted((layout.cassandra_home / "lib").glob("jamm-*.jar"))
    args = config.cassandra_java_args(layout, jamm_jar=jamm[-1] if jamm else None)
    return [java_executable(), *args], None


def _cassandra_ready(layout: Layout) -> bool:
    # Cassandra opens 9042 only once it says "Starting listening for CQL clients".
    return procs.port_open(ENDPOINTS.host, ENDPOINTS.cassandra_native_port)


def _minio_installed(layout: Layout) -> bool:
    return layout.minio_binary.exists()


def _minio_install(layout: Layout) -> bool:
    return fetch.build_minio(layout.minio_binary, layout.root / "build" / "minio-build.log")


def _minio_prepare(layout: Layout) -> None:
    layout.data_dir("minio").mkdir(parents=True, exist_ok=True)


def _minio_command(layout: Layout) -> tuple[list[str], dict[str, str] | None]:
    return config.minio_args(layout), {**os.environ, **config.minio_env()}


def _minio_ready(layout: Layout) -> bool:
    url = f"http://{ENDPOINTS.address('minio')}/minio/health/ready"
    return procs.http_ok(url)


SPECS: dict[str, ServiceSpec] = {
    "kafka": ServiceSpec(
        name="kafka",
        version=versions.KAFKA_VERSION,
        ports=(ENDPOINTS.kafka_port, ENDPOINTS.kafka_controller_port),
        ready_timeout=120,
        install_label="fetching jars from Maven Central",
        uses_maven=True,
        is_installed=_kafka_installed,
        install=_kafka_install,
        prepare=_kafka_prepare,
        command=_kafka_command,
        is_ready=_kafka_ready,
    ),
    "cassandra": ServiceSpec(
        name="cassandra",
        version=versions.CASSANDRA_VERSION,
        ports=(
            ENDPOINTS.cassandra_native_port,
            ENDPOINTS.cassandra_storage_port,
            ENDPOINTS.cassandra_jmx_port,
        ),
        ready_timeout=240,
        install_label="fetching jars from Maven Central",
        uses_maven=True,
        is_installed=_cassandra_installed,
        install=_cassandra_install,
        prepare=_cassandra_prepare,
        command=_cassandra_command,
        is_ready=_cassandra_ready,
    ),
    "minio": ServiceSpec(
        name="minio",
        version=versions.MINIO_VERSION,
        ports=(ENDPOINTS.minio_port, ENDPOINTS.minio_console_port),
        ready_timeout=60,
        install_label="building with `go install` (about 4 minutes on 2 cores)",
        uses_maven=False,
        is_installed=_minio_installed,
        install=_minio_install,
        prepare=_minio_prepare,
        command=_minio_command,
        is_ready=_minio_ready,
    ),
}


def parse_services(names: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate and order service names; None or empty means all of them.

    Accepts "kafka,minio" as well as ["kafka", "minio"].
    """
    if names is None:
        return SERVICES
    if isinstance(names, str):
        names = names.split(",")
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = wanted - set(SERVICES)
    if unknown:
        raise ValueError(
            f"unknown service(s): {', '.join(sorted(unknown))}; choose from {', '.join(SERVICES)}"
        )
    return tuple(s for s in SERVICES if s in wanted) or SERVICES


# --- locking --------------------------------------------------------------------------


@contextlib.contextmanager
def _stack_lock(layout: Layout, timeout: float = 1800.0) -> Iterator[None]:
    """Serialize `up`/`down` on one stack folder: two `up`s must not start two brokers."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as busy:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another `stack` command holds {layout.lock_file}"
                    ) from busy
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- status -----------------------------------------------------------------------------


def _service_state(spec: ServiceSpec, layout: Layout) -> tuple[str, procs.PidRecord | None]:
    record = procs.live_record(layout.pid_file(spec.name))
    if record is not None:
        return ("running" if spec.is_ready(layout) else "starting"), record
    if procs.port_open(ENDPOINTS.host, spec.ports[0]):
        return "port busy", None  # someone else's process; we leave it alone
    return "stopped", None


def status(root: Path | None = None) -> list[ServiceStatus]:
    """The state of every service, read from pid files and port probes."""
    layout = Layout(root) if root else Layout.default()
    rows: list[ServiceStatus] = []
    for name in SERVICES:
        spec = SPECS[name]
        state, record = _service_state(spec, layout)
        pid = record.pid if record else None
        rows.append(
            ServiceStatus(
                service=name,
                version=spec.version,
                pid=pid,
                address=ENDPOINTS.address(name),
                state=state,
                data_dir=layout.data_dir(name),
                log_file=layout.log_file(name),
                rss_bytes=procs.rss_bytes(pid) if pid else None,
                installed=spec.is_installed(layout),
            )
        )
    return rows


# --- up -------------------------------------------------------------------------------------


def _wait_ready(
    spec: ServiceSpec,
    layout: Layout,
    record: procs.PidRecord,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spec.is_ready(layout):
            return
        if not procs.record_alive(record):
            layout.pid_file(spec.name).unlink(missing_ok=True)
            code = procs.exit_code(record.pid)
            how = f" with status {code}" if code is not None else ""
            raise _ServiceFailed(
                f"exited during startup{how}. Read {layout.log_file(spec.name)}, fix the cause, "
                f"then run `photostream stack up --only {spec.name}` again.",
                log=layout.log_file(spec.name),
            )
        time.sleep(0.5)
    raise _ServiceFailed(
        f"not ready after {timeout:.0f}s (pid {record.pid} still runs). Check "
        f"`photostream stack status` in a minute; if it stays 'starting', run "
        f"`photostream stack down --only {spec.name}` and read its log.",
        log=layout.log_file(spec.name),
    )


def _check_ports_free(spec: ServiceSpec) -> None:
    busy = [p for p in spec.ports if procs.port_open(ENDPOINTS.host, p)]
    if busy:
        ports = ", ".join(str(p) for p in busy)
        raise _ServiceFailed(
            f"port(s) {ports} on {ENDPOINTS.host} are used by a process this stack did not "
            "start (an old broker or a system service?). Stop it, then run `up` again."
        )


def _up_one(
    spec: ServiceSpec, layout: Layout, timeout: float | None, report: Reporter
) -> ServiceResult:
    result = ServiceResult(service=spec.name)
    limit = timeout if timeout is not None else spec.ready_timeout
    state, record = _service_state(spec, layout)
    if state == "running" and record:
        result.action, result.pid = "already running", record.pid
        report(spec.name, f"already running (pid {record.pid})")
        return result
    if state == "starting" and record:
        result.action, result.pid = "was starting", record.pid
        report(spec.name, f"already starting (pid {record.pid}), waiting")
        began = time.monotonic()
        _wait_ready(spec, layout, record, limit)
        result.start_seconds = time.monotonic() - began
        report(spec.name, "ready")
        return result
    _check_ports_free(spec)

    if not spec.is_installed(layout):
        _install(spec, layout, result, report)

    report(spec.name, "starting")
    began = time.monotonic()
    layout.run_dir(spec.name).mkdir(parents=True, exist_ok=True)
    spec.prepare(layout)
    argv, env = spec.command(layout)
    log = layout.log_file(spec.name)
    procs.rotate_log(log)
    proc = procs.spawn_detached(argv, log, cwd=layout.run_dir(spec.name), env=env)
    record = procs.write_pid_file(layout.pid_file(spec.name), proc.pid, argv[0])
    result.action, result.pid = "started", proc.pid
    report(spec.name, f"waiting until ready (pid {proc.pid})")
    _wait_ready(spec, layout, record, limit)
    result.start_seconds = time.monotonic() - began
    report(spec.name, "ready")
    return result


def _install(
    spec: ServiceSpec, layout: Layout, result: ServiceResult, report: Reporter
) -> None:
    """Fetch or build the service, timing only the work and not the wait for Maven."""
    lock = _MAVEN_LOCK if spec.uses_maven else contextlib.nullcontext()
    if spec.uses_maven:
        report(spec.name, "waiting for the other Maven fetch")
    with lock:
        report(spec.name, spec.install_label)
        began = time.monotonic()
        result.fetched = spec.install(layout)
        result.fetch_seconds = time.monotonic() - began


def _wipe_run_data(layout: Layout, service: str) -> None:
    shutil.rmtree(layout.run_dir(service), ignore_errors=True)


def up(
    services: Iterable[str] | str | None = None,
    *,
    root: Path | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    report: Reporter = _no_report,
) -> UpReport:
    """Fetch what is missing, start what is not running, wait until all are ready.

    Services run as detached processes that outlive the caller. Raises StackError,
    after every service has had its chance, if any could not be brought up.
    """
    names = parse_services(services)
    layout = Layout(root) if root else Layout.default()
    with _stack_lock(layout):
        if fresh:
            _down_locked(names, layout, wipe=True, report=report)
        outcome = UpReport(env=config.env_settings(names))
        failures: list[ServiceFailure] = []
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            futures = {
                name: pool.submit(_up_one, SPECS[name], layout, timeout, report)
                for name in names
            }
            for name, future in futures.items():
                try:
                    outcome.results.append(future.result())
                except _ServiceFailed as failed:
                    report(name, "failed")
                    failures.append(_failure(name, str(failed), failed.log))
                except fetch.FetchError as failed:
                    report(name, "failed")
                    failures.append(_failure(name, str(failed), failed.log))
        if failures:
            raise StackError(failures)
        return outcome


def _failure(service: str, message: str, log: Path | None) -> ServiceFailure:
    return ServiceFailure(
        service=service, message=message, log=log, log_tail=procs.tail(log) if log else ""
    )


def ensure_up(
    services: Iterable[str] | str = SERVICES,
    progress: bool = True,
    *,
    root: Path | None = None,
    fresh: bool = False,
    timeout: float | None = None,
) -> dict[str, str]:
    """Bring the services up (idempotent) and return the PHOTOSTREAM_* settings for them.

    With progress=True a live rich display shows each service's phase on stderr.
    """
    if not progress:
        return up(services, root=root, fresh=fresh, timeout=timeout).env
    from stack.display import live_progress

    with live_progress(parse_services(services)) as report:
        return up(services, root=root, fresh=fresh, timeout=timeout, report=report).env


# --- down --------------------------------------------------------------------------------


def _down_one(name: str, layout: Layout, wipe: bool, report: Reporter) -> str:
    pid_file = layout.pid_file(name)
    record = procs.live_record(pid_file)
    outcome = "not running"
    if record is not None:
        report(name, f"stopping pid {record.pid}")
        killed = procs.terminate(record)
        outcome = "killed after timeout" if killed else "stopped"
    pid_file.unlink(missing_ok=True)
    if wipe:
        _wipe_run_data(layout, name)
        outcome += ", data wiped"
    report(name, outcome)
    return outcome


def _down_locked(
    names: tuple[str, ...], layout: Layout, wipe: bool, report: Reporter
) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {n: pool.submit(_down_one, n, layout, wipe, report) for n in names}
        return {n: f.result() for n, f in futures.items()}


def down(
    services: Iterable[str] | str | None = None,
    *,
    root: Path | None = None,
    wipe: bool = False,
    report: Reporter = _no_report,
) -> dict[str, str]:
    """Stop the services this stack started (by pid file only); optionally wipe their data.

    Returns what happened to each: "stopped", "killed after timeout" or "not running".
    """
    names = parse_services(services)
    layout = Layout(root) if root else Layout.default()
    with _stack_lock(layout):
        return _down_locked(names, layout, wipe, report)


def env(services: Iterable[str] | str | None = None) -> dict[str, str]:
    """The PHOTOSTREAM_* settings that point the app at the stack (running or not)."""
    return config.env_settings(parse_services(services))
