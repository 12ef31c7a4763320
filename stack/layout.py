"""Where the stack keeps what it fetches, builds and runs.

One root folder holds everything, so that deleting it is a complete reset and a second
``stack up`` can reuse every download:

    <root>/kafka-<ver>/lib/             jars fetched by Maven
    <root>/cassandra-<ver>/lib/
    <root>/bin/minio-<ver>              binary built by `go install`
    <root>/run/<service>/               runtime: data/, config, <service>.log, <service>.pid
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stack import versions

ROOT_ENV = "PHOTOSTREAM_STACK_DIR"
SERVICES: tuple[str, ...] = ("kafka", "cassandra", "minio")


def default_root() -> Path:
    """The stack folder: $PHOTOSTREAM_STACK_DIR, else ~/.cache/photostream/stack."""
    configured = os.environ.get(ROOT_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache_home / "photostream" / "stack").resolve()


@dataclass(frozen=True)
class Layout:
    """Paths under one stack root; pure, creates nothing."""

    root: Path

    @classmethod
    def default(cls) -> Layout:
        return cls(default_root())

    # --- fetched / built artifacts (kept across `down --wipe`) -----------------
    @property
    def kafka_home(self) -> Path:
        return self.root / f"kafka-{versions.KAFKA_VERSION}"

    @property
    def cassandra_home(self) -> Path:
        return self.root / f"cassandra-{versions.CASSANDRA_VERSION}"

    @property
    def minio_binary(self) -> Path:
        return self.root / "bin" / f"minio-{versions.MINIO_VERSION}"

    def home(self, service: str) -> Path:
        """Folder of a Maven-fetched service (its lib/ and pom.xml)."""
        return {"kafka": self.kafka_home, "cassandra": self.cassandra_home}[service]

    # --- runtime state (wiped by `down --wipe` / `up --fresh`) -----------------
    def run_dir(self, service: str) -> Path:
        return self.root / "run" / service

    def data_dir(self, service: str) -> Path:
        return self.run_dir(service) / "data"

    def log_file(self, service: str) -> Path:
        return self.run_dir(service) / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run_dir(service) / f"{service}.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"
