"""The `photostream` command."""
from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from api.settings import Settings
from stack.cli import stack

_TOKEN_RE = re.compile(r"([?&]token=)[^&\s\"]+")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with CLI flags on top; a clear message when invalid."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise click.UsageError("invalid settings:\n" + "\n".join(lines)) from exc


def configure_logging(level: str) -> None:
    """Text lines by default; PHOTOSTREAM_LOG_FORMAT=json for one JSON object a line.
    Either way every line carries the correlation id of the request it serves."""
    import os

    from observability.context import CorrelationFilter, JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CorrelationFilter())
    if os.environ.get("PHOTOSTREAM_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s]: %(message)s", datefmt="%H:%M:%S")
        )
    logging.basicConfig(level=level.upper(), handlers=[handler])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="photostream")
def main() -> None:
    """photostream: a photo-sharing social network built as an event-sourced CQRS system.

    Every change is an event appended to a log; projectors turn events into read models;
    queries read only those. By default everything runs embedded (SQLite and a local
    media folder under ./data); set PHOTOSTREAM_EVENT_STORE, PHOTOSTREAM_READ_STORE and
    PHOTOSTREAM_MEDIA_STORE (see `photostream stack env`) for Kafka, Cassandra and MinIO.
    """


class _RedactTokens(logging.Filter):
    """uvicorn logs each WebSocket's path; /v1/stream?token=... must not put a bearer
    token in the log (the web app sends it in the first frame instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_RE.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the embedded stores (default: $PHOTOSTREAM_DATA_DIR or ./data).",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None, help="Log verbosity.")
def serve(host: str, port: int, data_dir: Path | None, log_level: str | None) -> None:
    """Run the HTTP API and the web app (http://HOST:PORT/).

    Embedded, this one process also runs the projections. With the distributed backends
    it only serves; run `photostream worker` beside it to project events.
    """
    import uvicorn

    from api.app import create_app

    settings = load_settings(data_dir=data_dir, log_level=log_level)
    configure_logging(settings.log_level)
    logging.getLogger("photostream").info(
        "photostream on http://%s:%s/ (events %s, views %s, media %s)",
        host,
        port,
        settings.event_store.split("?")[0],
        settings.read_store,
        _redact(settings.media_store),
    )
    logging.getLogger("uvicorn.error").addFilter(_RedactTokens())
    # No per-message deflate on /v1/stream: its zlib state costs each idle connection
    # tens of KiB, and the frames are small JSON.
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=settings.log_level, access_log=False, ws_per_message_deflate=False
    )


@main.command()
@click.option(
    "--graph",
    "graph_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Edge list: one 'A B' pair of node ids a line (an undirected friendship: "
    "A follows B and B follows A). Lines starting with % or # are skipped.",
)
@click.option("--posts-per-account", default=3, show_default=True, type=click.IntRange(0, 50), help="Generated photo posts per account.")
@click.option("--max-accounts", default=None, type=click.IntRange(1), help="Seed only the first N nodes (and edges among them).")
@click.option("--password", default="photostream", show_default=True, help="Password of every seeded account (user<node id>).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Folder of the embedded stores.")
def seed(graph_path: Path, posts_per_account: int, max_accounts: int | None, password: str, data_dir: Path | None) -> None:
    """Create an account per node of a graph (user0, user1, ...), their follows, and
    generated photo posts, as the command handlers would append them (in bulk), with a progress bar.

    Example: photostream seed --graph ../shared/datasets/socfb-Reed98/socfb-Reed98.edges
    """
    from api.seed import GraphError, run_seed

    settings = load_settings(data_dir=data_dir)
    configure_logging("warning")
    try:
        report = run_seed(settings, graph_path, posts_per_account=posts_per_account, max_accounts=max_accounts, password=password)
    except GraphError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(report)


@main.command()
@click.option("--threads", default=None, type=click.IntRange(1, 256), help="Threads applying lane batches to Cassandra (default: one per projection; each batch runs its reads and writes as concurrent rounds).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None, help="Log verbosity.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve this worker's Prometheus metrics (writes per event = fan-out sizes, unknown events skipped) on http://127.0.0.1:PORT/metrics.",
)
def worker(threads: int | None, log_level: str | None, metrics_port: int | None) -> None:
    """Run the stream processors (a Faust worker) that project events into Cassandra.

    Distributed mode only: needs PHOTOSTREAM_EVENT_STORE=kafka://... and
    PHOTOSTREAM_READ_STORE=cassandra://... (`eval "$(photostream stack env)"`). Start as
    many as the events topic has partitions; they share the work and take over from
    each other. Embedded, `photostream serve` projects by itself.
    """
    settings = load_settings(log_level=log_level)
    configure_logging(settings.log_level)
    if not (settings.event_store.startswith("kafka:") and settings.read_store.startswith("cassandra:")):
        raise click.UsageError(
            "the worker needs PHOTOSTREAM_EVENT_STORE=kafka://... and PHOTOSTREAM_READ_STORE=cassandra://...; "
            "embedded, `photostream serve` runs the projections itself"
        )
    from faust.worker import Worker

    from projections.cassandra_store import CassandraReadStore
    from api.wiring import projection_settings
    from projections.registry import all_projectors
    from streams.faust_app import KafkaTopology, create_app, create_lane_topics

    from projections.versions import VersionedStore

    _migrate(settings)
    if metrics_port is not None:
        _serve_metrics(metrics_port)
    projectors = all_projectors(projection_settings(settings))
    topology = KafkaTopology.from_url(settings.event_store)
    asyncio.run(create_lane_topics(topology, projectors))
    # Writes go to each projection's active version (a rebuild switches it, see
    # `photostream projections rebuild`).
    store = VersionedStore(CassandraReadStore.from_url(settings.read_store), projectors)
    app = create_app(topology, projectors, store, datadir=str(settings.data_dir / "faust"), threads=threads)
    Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False).execute_from_commandline()


@main.command()
def migrate() -> None:
    """Create what the configured backends need and is missing: the Kafka topic, the
    Cassandra keyspace and tables (read models and the stream index). Idempotent;
    `serve` and `worker` run it at start."""
    settings = load_settings()
    configure_logging(settings.log_level)
    click.echo(_migrate(settings))


def _migrate(settings: Settings) -> str:

    from api.wiring import open_backend

    backend = open_backend(settings, run_projections=False)

    async def run() -> None:
        await backend.start()  # creates the topic and the stream index when distributed
        await backend.close()

    asyncio.run(run())
    tables = sum(len(p.tables) for p in backend.projectors)
    return f"ready: {tables} read-model tables in {backend.settings.read_store}; event store {backend.settings.event_store}"


@main.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def backup(destination: Path) -> None:
    """Copy the embedded event log to DESTINATION, consistently, while it is in use.

    The log is all there is to back up: the read models are rebuilt from it. Distributed,
    back up the Kafka topic instead (docs/DURABILITY.md)."""
    settings = load_settings()
    _embedded_only(settings, "backup")
    from streams.sqlite_event_store import sqlite_path

    _sqlite_backup(sqlite_path(settings.event_store), destination)
    click.echo(f"backed up {_event_count(destination)} events to {destination}")


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore(source: Path) -> None:
    """Replace the embedded event log with a backup made by `photostream backup`, and
    drop the read models so that the next `photostream serve` rebuilds them from it.
    Stop the server first."""
    settings = load_settings()
    _embedded_only(settings, "restore")
    from streams.sqlite_event_store import sqlite_path

    count = _event_count(source)  # refuses what is not an event log
    log_path, views_path = sqlite_path(settings.event_store), sqlite_path(settings.read_store)
    for path in (views_path, log_path):
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
    _sqlite_backup(source, log_path)
    click.echo(f"restored {count} events into {log_path}; the read models rebuild at the next start")


def _embedded_only(settings: Settings, what: str) -> None:
    if not settings.embedded:
        raise click.UsageError(f"`photostream {what}` copies the embedded SQLite log; distributed, see docs/DURABILITY.md")


def _sqlite_backup(source: Path, destination: Path) -> None:
    """SQLite's online backup: a consistent copy even while the server writes."""
    import sqlite3

    destination.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(destination)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _event_count(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise click.ClickException(f"{path} is not a photostream event log: {exc}") from exc
    finally:
        conn.close()


def _serve_metrics(port: int) -> None:
    """A tiny HTTP server on a daemon thread: GET /metrics of this process's registry."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from observability.metrics import REGISTRY

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = REGISTRY.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


main.add_command(stack)

from api.ops_cli import events, projections  # noqa: E402 - they use load_settings above

main.add_command(events)
main.add_command(projections)
