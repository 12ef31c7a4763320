"""Pure rendering of everything the stack writes to disk or prints.

Nothing here touches the file system or the network (except reading the packaged JVM
options file), so the tests can check the exact text each service is started with.
"""

from __future__ import annotations

import base64
import shlex
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from stack import versions
from stack.layout import Layout

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Endpoints:
    """Loopback ports and dev credentials; fixed so every tool agrees without asking."""

    host: str = HOST
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    cassandra_native_port: int = 9042
    cassandra_storage_port: int = 7000
    cassandra_jmx_port: int = 7199
    minio_port: int = 9000
    minio_console_port: int = 9001
    # Dev-only credentials: the server listens on loopback only.
    minio_user: str = "photostream"
    minio_password: str = "photostream-secret"
    media_bucket: str = "photostream-media"
    keyspace: str = "photostream"

    def address(self, service: str) -> str:
        port = {
            "kafka": self.kafka_port,
            "cassandra": self.cassandra_native_port,
            "minio": self.minio_port,
        }[service]
        return f"{self.host}:{port}"


PORT_OFFSET_ENV = "PHOTOSTREAM_STACK_PORT_OFFSET"


def endpoints_from_env() -> Endpoints:
    """The default ports, or all of them shifted by $PHOTOSTREAM_STACK_PORT_OFFSET: a
    second, private stack (its own `--dir`) beside the usual one, e.g. for fault tests
    that stop and start services (tests/test_faults.py)."""
    import dataclasses
    import os

    text = os.environ.get(PORT_OFFSET_ENV, "").strip()
    if not text:
        return Endpoints()
    if not text.isdigit() or not 0 <= int(text) <= 50_000:
        raise ValueError(f"{PORT_OFFSET_ENV}={text!r} must be a whole number from 0 to 50000")
    base = Endpoints()
    shifted = {f.name: getattr(base, f.name) + int(text) for f in dataclasses.fields(base) if f.name.endswith("_port")}
    return dataclasses.replace(base, **shifted)


ENDPOINTS = endpoints_from_env()


# --- environment for the app ---------------------------------------------------

ENV_VAR_BY_SERVICE: dict[str, str] = {
    "kafka": "PHOTOSTREAM_EVENT_STORE",
    "cassandra": "PHOTOSTREAM_READ_STORE",
    "minio": "PHOTOSTREAM_MEDIA_STORE",
}


def env_settings(
    services: tuple[str, ...] = ("kafka", "cassandra", "minio"),
    endpoints: Endpoints = ENDPOINTS,
) -> dict[str, str]:
    """The PHOTOSTREAM_* settings that point the app at the given services."""
    e = endpoints
    urls = {
        "kafka": f"kafka://{e.address('kafka')}",
        "cassandra": f"cassandra://{e.address('cassandra')}/{e.keyspace}",
        "minio": (
            f"s3://{e.minio_user}:{e.minio_password}@{e.address('minio')}/{e.media_bucket}"
        ),
    }
    return {ENV_VAR_BY_SERVICE[s]: urls[s] for s in services}


def render_env_exports(settings: dict[str, str]) -> str:
    """`export K=V` lines, quoted so that `eval "$(photostream stack env)"` is safe."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in settings.items())


# --- Maven ---------------------------------------------------------------------


@dataclass(frozen=True)
class MavenArtifact:
    group: str
    artifact: str
    version: str


KAFKA_ARTIFACTS: tuple[MavenArtifact, ...] = (
    MavenArtifact("org.apache.kafka", f"kafka_{versions.SCALA_BINARY_VERSION}",
                  versions.KAFKA_VERSION),
    # TopicCommand & co., so the same lib/ can administer the broker by hand.
    MavenArtifact("org.apache.kafka", "kafka-tools", versions.KAFKA_VERSION),
    # Kafka 4 logs via SLF4J 1.7 -> log4j2; without a binding it logs nothing at all.
    MavenArtifact("org.apache.logging.log4j", "log4j-slf4j-impl", versions.LOG4J2_VERSION),
    MavenArtifact("org.apache.logging.log4j", "log4j-core", versions.LOG4J2_VERSION),
)

CASSANDRA_ARTIFACTS: tuple[MavenArtifact, ...] = (
    # Brings logback (its own log backend), JNA, netty etc. transitively.
    MavenArtifact("org.apache.cassandra", "cassandra-all", versions.CASSANDRA_VERSION),
)


def render_pom(name: str, artifacts: tuple[MavenArtifact, ...]) -> str:
    """A throwaway pom whose only job is to let `dependency:copy-dependencies` run."""
    deps = "".join(
        "    <dependency>\n"
        f"      <groupId>{escape(a.group)}</groupId>\n"
        f"      <artifactId>{escape(a.artifact)}</artifactId>\n"
        f"      <version>{escape(a.version)}</version>\n"
        "    </dependency>\n"
        for a in artifacts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<project xmlns="http://maven.apache.org/POM/4.0.0"\n'
        '         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        '         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 '
        'http://maven.apache.org/xsd/maven-4.0.0.xsd">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>photostream.stack</groupId>\n"
        f"  <artifactId>{escape(name)}-runtime</artifactId>\n"
        "  <version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n"
        f"{deps}"
        "  </dependencies>\n"
        "</project>\n"
    )


# --- Kafka ---------------------------------------------------------------------


def new_kafka_cluster_id() -> str:
    """A cluster id in Kafka's own format: 16 random bytes, URL-safe base64, unpadded.

    Kafka rejects ids that start with '-' on its command line, as its own generator
    does, so those are drawn again.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def render_kafka_properties(layout: Layout, endpoints: Endpoints = ENDPOINTS) -> str:
    """server.properties for one KRaft node that is both broker and controller."""
    e = endpoints
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Dynamic quorum (KIP-853): formatted with --standalone, so no static voter list.
        "controller.quorum.bootstrap.servers": f"{e.host}:{e.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{e.host}:{e.kafka_port},"
                     f"CONTROLLER://{e.host}:{e.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{e.host}:{e.kafka_port},"
                                f"CONTROLLER://{e.host}:{e.kafka_controller_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(layout.data_dir("kafka")),
        # One node: every internal topic must be satisfiable with a single replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # The app creates its topics with their own partitions and retention.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # No point waiting for more group members to join on a dev box.
        "group.initial.rebalance.delay.ms": "0",
        # Two cores: the defaults (3 network, 8 io threads) only add context switches.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    header = "# Written by `photostream stack up`; rewritten on every start.\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())


def render_log4j2_xml() -> str:
    """log4j2 config: everything to stdout, which the stack sends to kafka.log."""
    return """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <!-- Per-request and state-change chatter would drown the useful lines. -->
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
    <Root level="INFO">
      <AppenderRef ref="stdout"/>
    </Root>
  </Loggers>
</Configuration>
"""


def kafka_java_args(layout: Layout, heap: str = "512m") -> list[str]:
    """The JVM command line of the broker (without the `java` executable)."""
    run = layout.run_dir("kafka")
    return [
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:MaxInlineLevel=15",  # as kafka-run-class.sh does: a measurable speed-up
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={(run / 'log4j2.xml').as_uri()}",
        f"-Dkafka.logs.dir={run}",
        "-cp",
        str(layout.kafka_home / "lib" / "*"),
        "kafka.Kafka",
        str(run / "server.properties"),
    ]


def kafka_format_args(layout: Layout, cluster_id: str) -> list[str]:
    """StorageTool arguments that format the metadata log of a standalone controller."""
    run = layout.run_dir("kafka")
    return [
        f"-Dlog4j2.configurationFile={(run / 'log4j2.xml').as_uri()}",
        "-cp",
        str(layout.kafka_home / "lib" / "*"),
        "kafka.tools.StorageTool",
        "format",
        "--config",
        str(run / "server.properties"),
        "--cluster-id",
        cluster_id,
        "--standalone",
        "--ignore-formatted",
    ]


# --- Cassandra -------------------------------------------------------------------


def render_cassandra_yaml(layout: Layout, endpoints: Endpoints = ENDPOINTS) -> str:
    """A minimal Cassandra 5.0 cassandra.yaml for one node on loopback.

    Small memtables and few threads because it shares two cores and a 1 GiB heap with
    Kafka and MinIO; everything else keeps Cassandra's defaults.
    """
    e = endpoints
    data = layout.data_dir("cassandra")
    return f"""# Written by `photostream stack up`; rewritten on every start.
cluster_name: photostream
num_tokens: 16
allocate_tokens_for_local_replication_factor: 1
# A seed on its own: nothing to stream from, so never bootstrap.
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{e.host}:{e.cassandra_storage_port}"
listen_address: {e.host}
rpc_address: {e.host}
storage_port: {e.cassandra_storage_port}
native_transport_port: {e.cassandra_native_port}
start_native_transport: true

data_file_directories:
  - {data / "data"}
commitlog_directory: {data / "commitlog"}
saved_caches_directory: {data / "saved_caches"}
hints_directory: {data / "hints"}
cdc_raw_directory: {data / "cdc_raw"}
commitlog_sync: periodic
commitlog_sync_period: 10000ms

# A new cluster with nothing to stay compatible with: use the 5.0 formats.
storage_compatibility_mode: NONE

authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
network_authorizer: AllowAllNetworkAuthorizer
# One node holds every replica: hints would only ever be for itself.
hinted_handoff_enabled: false

memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
memtable_allocation_type: heap_buffers
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_materialized_view_writes: 4
concurrent_compactors: 1
compaction_throughput: 64MiB/s
key_cache_size: 32MiB
# Keeps a crash-restarted node from replaying huge commitlogs on a dev box.
commitlog_segment_size: 16MiB
disk_optimization_strategy: ssd
# Let tests create and drop keyspaces freely without waiting on snapshots.
auto_snapshot: false
# Reads/writes of the app run on the same box as three JVMs; give them room.
read_request_timeout: 10000ms
write_request_timeout: 10000ms
range_request_timeout: 20000ms
request_timeout: 20000ms
"""


def render_logback_xml() -> str:
    """logback config: INFO to stdout (sent to cassandra.log), no rolling files."""
    return """<?xml version="1.0" encoding="UTF-8"?>
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
"""


def jvm17_server_flags() -> list[str]:
    """The flags of Cassandra's conf/jvm17-server.options, packaged under stack/conf/."""
    text = resources.files("stack").joinpath("conf/jvm17-server.options").read_text()
    return parse_jvm_options(text)


def parse_jvm_options(text: str) -> list[str]:
    """One flag per non-blank, non-comment line, as Cassandra's launcher reads them.

    A line like `--add-opens a/b=ALL-UNNAMED` is one option with a value, which the
    java launcher wants as two argv entries.
    """
    flags: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        flags.extend(line.split(maxsplit=1))
    return flags


def cassandra_java_args(
    layout: Layout,
    endpoints: Endpoints = ENDPOINTS,
    heap: str = "1G",
    jamm_jar: Path | None = None,
) -> list[str]:
    """The JVM command line of Cassandra (without the `java` executable)."""
    run = layout.run_dir("cassandra")
    args = [
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-Xss256k",
        "-XX:+HeapDumpOnOutOfMemoryError",
        # Die on OOM rather than limp on and risk corrupt data (Cassandra warns otherwise).
        "-XX:+ExitOnOutOfMemoryError",
        f"-XX:HeapDumpPath={run}",
        "-XX:+PerfDisableSharedMem",
        "-Djava.net.preferIPv4Stack=true",
        *jvm17_server_flags(),
    ]
    if jamm_jar is not None:
        # Memtable sizing measures objects through jamm's agent, as cassandra-env.sh does.
        args.append(f"-javaagent:{jamm_jar}")
    args += [
        f"-Dcassandra.config={(run / 'cassandra.yaml').as_uri()}",
        f"-Dlogback.configurationFile={(run / 'logback.xml').as_uri()}",
        f"-Dcassandra.logdir={run}",
        f"-Dcassandra.storagedir={layout.data_dir('cassandra')}",
        "-Dcassandra-foreground=yes",
        # Single node: there is no gossip to settle and no ring to wait for.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        # The first start sleeps one ring delay (30 s) before picking tokens, to hear
        # of other nodes; there are none.
        "-Dcassandra.ring_delay_ms=1000",
        f"-Dcassandra.triggers_dir={run / 'triggers'}",
        # JMX on loopback only, so nodetool works: `nodetool -p 7199 status`.
        f"-Dcassandra.jmx.local.port={endpoints.cassandra_jmx_port}",
        "-cp",
        str(layout.cassandra_home / "lib" / "*"),
        "org.apache.cassandra.service.CassandraDaemon",
    ]
    return args


# --- MinIO -------------------------------------------------------------------------


def minio_args(layout: Layout, endpoints: Endpoints = ENDPOINTS) -> list[str]:
    """The `minio server` command line, binary included."""
    e = endpoints
    return [
        str(layout.minio_binary),
        "server",
        str(layout.data_dir("minio")),
        "--address",
        f"{e.host}:{e.minio_port}",
        "--console-address",
        f"{e.host}:{e.minio_console_port}",
    ]


def minio_env(endpoints: Endpoints = ENDPOINTS) -> dict[str, str]:
    """Credentials and switches for `minio server`; merged over the caller's env."""
    return {
        "MINIO_ROOT_USER": endpoints.minio_user,
        "MINIO_ROOT_PASSWORD": endpoints.minio_password,
        # No phoning home to check for updates: the network reaches no such place.
        "MINIO_UPDATE": "off",
        "MINIO_BROWSER": "on",
    }
