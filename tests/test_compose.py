"""docker-compose.yml cannot be run here (no Docker engine); check what can be checked:
it parses, has every service of the design, and its photostream settings are valid."""
from __future__ import annotations

from pathlib import Path

import yaml

from api.settings import Settings

COMPOSE = Path(__file__).parent.parent / "docker-compose.yml"


def test_compose_file_has_the_whole_system() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"kafka", "cassandra", "minio", "api", "worker", "migrate"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("kafka", "cassandra", "minio", "api"):
        assert "healthcheck" in services[name], name
    for name in ("api", "worker", "migrate"):
        env = {k.removeprefix("PHOTOSTREAM_").lower(): v for k, v in services[name]["environment"].items()}
        settings = Settings(**env)
        assert not settings.embedded
        assert settings.event_store.startswith("kafka://kafka:9092")
        assert settings.read_store == "cassandra://cassandra:9042/photostream"
