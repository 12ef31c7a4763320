"""Fast tests of the stack package: rendering, env output, pid files, and the up/down
machinery driven with a stand-in service (a tiny Python TCP server), so nothing is
downloaded and no real Kafka, Cassandra or MinIO is started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from stack import config, procs, services, versions
from stack.cli import stack
from stack.layout import ROOT_ENV, Layout, default_root

# --- layout ---------------------------------------------------------------------------


def test_default_root_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "s"))
    assert default_root() == (tmp_path / "s").resolve()


def test_default_root_is_under_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_root() == (tmp_path / "photostream" / "stack").resolve()


def test_layout_paths_carry_versions(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.kafka_home == tmp_path / f"kafka-{versions.KAFKA_VERSION}"
    assert layout.cassandra_home == tmp_path / f"cassandra-{versions.CASSANDRA_VERSION}"
    assert layout.minio_binary == tmp_path / "bin" / f"minio-{versions.MINIO_VERSION}"
    assert layout.pid_file("kafka") == tmp_path / "run" / "kafka" / "kafka.pid"
    assert layout.log_file("minio") == tmp_path / "run" / "minio" / "minio.log"


def test_versions_are_exact_pins() -> None:
    assert versions.KAFKA_VERSION.startswith("4.1.")
    assert versions.CASSANDRA_VERSION.startswith("5.0.")
    for pin in (versions.KAFKA_VERSION, versions.CASSANDRA_VERSION, versions.LOG4J2_VERSION):
        assert all(part.isdigit() for part in pin.split(".")), pin
    assert "latest" not in versions.MINIO_VERSION


# --- env output -------------------------------------------------------------------------


def test_env_settings_for_all_services() -> None:
    assert config.env_settings() == {
        "PHOTOSTREAM_EVENT_STORE": "kafka://127.0.0.1:9092",
        "PHOTOSTREAM_READ_STORE": "cassandra://127.0.0.1:9042/photostream",
        "PHOTOSTREAM_MEDIA_STORE": (
            "s3://photostream:photostream-secret@127.0.0.1:9000/photostream-media"
        ),
    }


def test_env_settings_subset() -> None:
    assert list(config.env_settings(("minio",))) == ["PHOTOSTREAM_MEDIA_STORE"]


def test_env_exports_survive_a_shell_eval() -> None:
    text = config.render_env_exports(config.env_settings())
    assert text.splitlines()[0] == "export PHOTOSTREAM_EVENT_STORE=kafka://127.0.0.1:9092"
    shell = subprocess.run(
        ["sh", "-c", text + 'printf "%s\\n" "$PHOTOSTREAM_MEDIA_STORE"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.strip() == config.env_settings()["PHOTOSTREAM_MEDIA_STORE"]


def test_env_exports_quote_awkward_values() -> None:
    assert config.render_env_exports({"X": "a b$c"}) == "export X='a b$c'\n"


def test_cli_env_prints_only_exports() -> None:
    result = CliRunner().invoke(stack, ["env", "--only", "kafka,cassandra"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "export PHOTOSTREAM_EVENT_STORE=kafka://127.0.0.1:9092\n"
        "export PHOTOSTREAM_READ_STORE=cassandra://127.0.0.1:9042/photostream\n"
    )


def test_cli_rejects_unknown_service() -> None:
    result = CliRunner().invoke(stack, ["env", "--only", "kafka,redis"])
    assert result.exit_code != 0
    assert "redis" in result.output


def test_cli_group_is_named_stack_and_documented() -> None:
    import click

    assert isinstance(stack, click.Group) and stack.name == "stack"
    for name, command in stack.commands.items():
        assert command.help and len(command.help) > 40, name
    assert set(stack.commands) == {"up", "down", "status", "env"}


def test_parse_services() -> None:
    assert services.parse_services(None) == ("kafka", "cassandra", "minio")
    assert services.parse_services("minio, kafka") == ("kafka", "minio")
    assert services.parse_services(["CASSANDRA"]) == ("cassandra",)
    with pytest.raises(ValueError, match="redis"):
        services.parse_services("redis")


# --- config rendering ---------------------------------------------------------------------


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {k: v for k, v in pairs}


def test_kafka_properties_single_kraft_node(tmp_path: Path) -> None:
    props = _properties(config.render_kafka_properties(Layout(tmp_path)))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in props  # --standalone means a dynamic quorum
    assert props["log.dirs"] == str(tmp_path / "run" / "kafka" / "data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key
    assert props["auto.create.topics.enable"] == "false"


def test_kafka_cluster_id_format() -> None:
    ids = {config.new_kafka_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_kafka_command_lines(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    args = config.kafka_java_args(layout)
    assert args[-2:] == ["kafka.Kafka", str(tmp_path / "run" / "kafka" / "server.properties")]
    assert args[args.index("-cp") + 1] == str(layout.kafka_home / "lib" / "*")
    assert "-Xmx512m" in args
    fmt = config.kafka_format_args(layout, "abc")
    assert "kafka.tools.StorageTool" in fmt and "--standalone" in fmt
    assert fmt[fmt.index("--cluster-id") + 1] == "abc"


def test_cassandra_yaml_is_valid_and_local(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(config.render_cassandra_yaml(Layout(tmp_path)))
    data = tmp_path / "run" / "cassandra" / "data"
    assert doc["num_tokens"] == 16
    assert doc["native_transport_port"] == 9042
    assert doc["listen_address"] == doc["rpc_address"] == "127.0.0.1"
    assert doc["data_file_directories"] == [str(data / "data")]
    assert doc["commitlog_directory"] == str(data / "commitlog")
    assert doc["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.1:7000"


def test_cassandra_yaml_mentions_every_directory(tmp_path: Path) -> None:
    text = config.render_cassandra_yaml(Layout(tmp_path))
    for key in ("commitlog_directory", "saved_caches_directory", "hints_directory",
                "cdc_raw_directory", "data_file_directories"):
        assert f"{key}:" in text
    assert "/tmp/" not in text.replace(str(tmp_path), "")  # nothing outside the stack


def test_jvm_options_parsing() -> None:
    text = "# comment\n\n-XX:+UseG1GC\n--add-opens java.base/java.lang=ALL-UNNAMED\n  \n"
    assert config.parse_jvm_options(text) == [
        "-XX:+UseG1GC",
        "--add-opens",
        "java.base/java.lang=ALL-UNNAMED",
    ]


def test_packaged_jvm17_flags_open_what_cassandra_needs() -> None:
    flags = config.jvm17_server_flags()
    pairs = set(zip(flags, flags[1:], strict=False))
    assert ("--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED") in pairs
    assert ("--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED") in pairs
    assert all(not f.startswith("#") for f in flags)


def test_cassandra_command_line(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    jamm = tmp_path / "jamm-0.4.0.jar"
    args = config.cassandra_java_args(layout, jamm_jar=jamm)
    assert args[-1] == "org.apache.cassandra.service.CassandraDaemon"
    config_uri = (tmp_path / "run" / "cassandra" / "cassandra.yaml").as_uri()
    assert f"-Dcassandra.config={config_uri}" in args
    assert "-Dcassandra-foreground=yes" in args
    assert "-Dcassandra.skip_wait_for_gossip_to_settle=0" in args
    assert f"-javaagent:{jamm}" in args
    assert "-Xmx1G" in args
    # JVM options must come before the main class.
    assert args.index("--add-opens") < args.index("org.apache.cassandra.service.CassandraDaemon")


def test_minio_command_and_env(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    args = config.minio_args(layout)
    assert args[:3] == [str(layout.minio_binary), "server", str(layout.data_dir("minio"))]
    assert args[args.index("--address") + 1] == "127.0.0.1:9000"
    assert args[args.index("--console-address") + 1] == "127.0.0.1:9001"
    env = config.minio_env()
    assert env["MINIO_ROOT_USER"] == "photostream"
    assert env["MINIO_ROOT_PASSWORD"] == "photostream-secret"


def test_pom_lists_artifacts() -> None:
    pom = config.render_pom("kafka", config.KAFKA_ARTIFACTS)
    assert f"<artifactId>kafka_2.13</artifactId>\n      <version>{versions.KAFKA_VERSION}" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
    assert "<packaging>pom</packaging>" in pom


def test_maven_stamp_tracks_the_pom(tmp_path: Path) -> None:
    from stack import fetch

    pom = config.render_pom("kafka", config.KAFKA_ARTIFACTS)
    assert not fetch.maven_lib_ready(tmp_path, pom)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / fetch.STAMP).write_text(fetch.maven_stamp(pom))
    assert fetch.maven_lib_ready(tmp_path, pom)
    assert not fetch.maven_lib_ready(tmp_path, pom.replace("4.", "9."))  # a version bump refetches


def test_java_major_version() -> None:
    assert services.java_major_version('openjdk version "17.0.15" 2025-04-15') == 17
    assert services.java_major_version('java version "1.8.0_392"') == 8
    assert services.java_major_version('openjdk version "21" 2023-09-19') == 21
    assert services.java_major_version("nonsense") is None


# --- pid files ------------------------------------------------------------------------------


def test_pid_file_round_trip(tmp_path: Path) -> None:
    pid_file = tmp_path / "run" / "x.pid"
    written = procs.write_pid_file(pid_file, os.getpid(), "python")
    assert procs.read_pid_file(pid_file) == written
    assert written.start_time == procs.process_start_time(os.getpid())
    assert procs.live_record(pid_file) == written  # we are alive


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pid_file = tmp_path / "x.pid"
    procs.write_pid_file(pid_file, child.pid, "python")
    assert procs.live_record(pid_file) is None
    assert not pid_file.exists()


def test_reused_pid_is_not_ours(tmp_path: Path) -> None:
    # Same pid, different start time: the kernel gave our old pid to someone else.
    record = procs.PidRecord(pid=os.getpid(), start_time=1, argv0="java", started_at=0.0)
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(record.to_json())
    assert not procs.record_alive(record)
    assert procs.live_record(pid_file) is None
    assert not pid_file.exists()


def test_garbage_pid_file_is_ignored(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("not json")
    assert procs.read_pid_file(pid_file) is None
    assert procs.live_record(pid_file) is None
    assert not pid_file.exists()


def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
               "print('up', flush=True); time.sleep(60)"
    proc = procs.spawn_detached([sys.executable, "-c", stubborn], tmp_path / "s.log", tmp_path)
    _wait_for(lambda: procs.log_contains(tmp_path / "s.log", "up"))
    record = procs.write_pid_file(tmp_path / "s.pid", proc.pid, "python")
    assert procs.terminate(record, grace_seconds=0.5) is True
    assert not procs.record_alive(record)


def test_tail_and_rotate(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert procs.tail(log, 3) == "line 97\nline 98\nline 99\n"
    procs.rotate_log(log)
    assert not log.exists() and (tmp_path / "a.log.1").exists()
    assert procs.tail(tmp_path / "missing.log") == ""


def test_port_probe() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert procs.port_open("127.0.0.1", port)
    assert not procs.port_open("127.0.0.1", port)


# --- up / down / status with a stand-in service ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


FAKE_SERVER = """
import socket, sys, time
time.sleep(float(sys.argv[2]))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""


def _fake_spec(port: int, delay: float = 0.0, crash: bool = False) -> services.ServiceSpec:
    """A 'minio' that is a Python TCP server: same lifecycle, nothing to download."""
    script = "import sys; print('boom: bad config', flush=True); sys.exit(3)" if crash \
        else FAKE_SERVER

    def command(layout: Layout) -> tuple[list[str], dict[str, str] | None]:
        return [sys.executable, "-c", script, str(port), str(delay)], None

    return replace(
        services.SPECS["minio"],
        ports=(port,),
        ready_timeout=10,
        is_installed=lambda layout: True,
        install=lambda layout: False,
        prepare=lambda layout: layout.data_dir("minio").mkdir(parents=True, exist_ok=True),
        command=command,
        is_ready=lambda layout: procs.port_open("127.0.0.1", port),
    )


def test_up_is_idempotent_and_down_stops(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = _free_port()
    monkeypatch.setitem(services.SPECS, "minio", _fake_spec(port, delay=0.3))
    env = services.ensure_up(("minio",), progress=False, root=tmp_path)
    assert env == config.env_settings(("minio",))
    layout = Layout(tmp_path)
    first = procs.read_pid_file(layout.pid_file("minio"))
    assert first is not None and procs.port_open("127.0.0.1", port)

    [row] = [r for r in services.status(tmp_path) if r.service == "minio"]
    assert (row.state, row.pid) == ("running", first.pid)

    again = services.up(("minio",), root=tmp_path)
    assert again.results[0].action == "already running"
    assert procs.read_pid_file(layout.pid_file("minio")) == first  # not restarted

    assert services.down(("minio",), root=tmp_path) == {"minio": "stopped"}
    assert not layout.pid_file("minio").exists()
    assert not procs.record_alive(first)
    assert layout.data_dir("minio").exists()  # data kept without --wipe

    assert services.down(("minio",), root=tmp_path, wipe=True) == {
        "minio": "not running, data wiped"
    }
    assert not layout.run_dir("minio").exists()


def test_up_reports_a_crash_with_the_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(services.SPECS, "minio", _fake_spec(_free_port(), crash=True))
    with pytest.raises(services.StackError) as caught:
        services.up(("minio",), root=tmp_path)
    [failure] = caught.value.failures
    assert failure.service == "minio"
    assert "exited during startup with status 3" in failure.message
    assert "boom: bad config" in failure.log_tail
    assert not Layout(tmp_path).pid_file("minio").exists()


def test_up_refuses_a_port_held_by_someone_else(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.setitem(services.SPECS, "minio", _fake_spec(port))
        [row] = [r for r in services.status(tmp_path) if r.service == "minio"]
        assert row.state == "port busy"
        with pytest.raises(services.StackError, match="did not start"):
            services.up(("minio",), root=tmp_path)
        # down never touches what it did not start
        assert services.down(("minio",), root=tmp_path) == {"minio": "not running"}


def test_fresh_wipes_run_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(services.SPECS, "minio", _fake_spec(_free_port()))
    layout = Layout(tmp_path)
    services.up(("minio",), root=tmp_path)
    marker = layout.data_dir("minio") / "old-object"
    marker.write_text("x")
    services.up(("minio",), root=tmp_path, fresh=True)
    assert not marker.exists()
    assert procs.live_record(layout.pid_file("minio")) is not None
    services.down(("minio",), root=tmp_path, wipe=True)


def test_cli_status_and_down_on_empty_stack(tmp_path: Path) -> None:
    runner = CliRunner()
    status = runner.invoke(stack, ["--dir", str(tmp_path), "status"])
    assert status.exit_code == 0, status.output
    for name in ("kafka", "cassandra", "minio"):
        assert name in status.output
    down = runner.invoke(stack, ["--dir", str(tmp_path), "down", "--only", "kafka"])
    assert down.exit_code == 0, down.output
