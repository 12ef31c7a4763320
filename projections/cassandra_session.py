"""One way to open a Cassandra session from a `cassandra://` URL (read store and the
Kafka event store's stream index both use it).

    cassandra://host[:port][,host2[:port]]/keyspace[?replication=N&dc=NAME]

Token-aware routing over DC-aware round robin, so a query goes straight to a replica of
its partition. The keyspace is created if missing (SimpleStrategy with `replication`
copies, default 1; with `dc=NAME`, NetworkTopologyStrategy in that data centre).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra import ConsistencyLevel

KEYSPACE_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")


class _OneKeyspacePerSession(logging.Filter):
    """Cassandra 5 warns on every statement prepared in a session with a keyspace set,
    because names could be ambiguous across keyspaces. Our sessions use exactly one
    keyspace, so that warning says nothing here; every other server warning stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "with prepared statements is considered to be an anti-pattern" not in record.getMessage()


logging.getLogger("cassandra.protocol").addFilter(_OneKeyspacePerSession())


@dataclass(frozen=True)
class CassandraUrl:
    hosts: tuple[str, ...]
    port: int
    keyspace: str
    replication: int = 1
    dc: str | None = None

    def __repr__(self) -> str:
        return f"cassandra://{','.join(self.hosts)}:{self.port}/{self.keyspace}"


def parse_cassandra_url(url: str) -> CassandraUrl:
    parts = urlsplit(url)
    if parts.scheme != "cassandra":
        raise ValueError(f"not a cassandra URL: {url!r} (expected cassandra://host:9042/keyspace)")
    hosts: list[str] = []
    port = 9042
    for item in (parts.netloc or "").split(","):
        if not item:
            continue
        host, _, port_text = item.partition(":")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{url!r}: port {port_text!r} is not a port number")
            port = int(port_text)
        hosts.append(host)
    if not hosts:
        raise ValueError(f"{url!r}: name at least one host, e.g. cassandra://127.0.0.1:9042/photostream")
    keyspace = parts.path.strip("/")
    if not KEYSPACE_RE.fullmatch(keyspace):
        raise ValueError(f"{url!r}: the keyspace must be 1-48 of a-z, 0-9 and _, starting with a letter")
    query = parse_qs(parts.query)
    replication_text = query.get("replication", ["1"])[0]
    if not replication_text.isdigit() or int(replication_text) < 1:
        raise ValueError(f"{url!r}: replication must be a positive whole number")
    return CassandraUrl(tuple(hosts), port, keyspace, int(replication_text), query.get("dc", [None])[0])


def open_session(url: CassandraUrl, *, create_keyspace: bool = True) -> tuple[Cluster, Session]:
    """A connected session using url.keyspace. LOCAL_QUORUM reads and writes: with one
    replica that is ONE, with three it survives a node down and still reads its writes."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=url.dc)),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=20,
    )
    cluster = Cluster(
        list(url.hosts),
        port=url.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=5,
        connect_timeout=10,
    )
    session = cluster.connect()
    if create_keyspace:
        if url.dc:
            replication = f"{{'class': 'NetworkTopologyStrategy', '{url.dc}': {url.replication}}}"
        else:
            replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {url.replication}}}"
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {url.keyspace} WITH replication = {replication}")
    session.set_keyspace(url.keyspace)
    return cluster, session
