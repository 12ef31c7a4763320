"""The `photostream` command."""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from api.settings import Settings
from stack.cli import stack


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with CLI flags on top; a clear message when invalid."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise click.UsageError("invalid settings:\n" + "\n".join(lines)) from exc


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="photostream")
def main() -> None:
    """photostream: a photo-sharing social network built as an event-sourced CQRS system.

    Every change is an event appended to a log; projectors turn events into read models;
    queries read only those. By default everything runs embedded (SQLite and a local
    media folder under ./data); set PHOTOSTREAM_EVENT_STORE, PHOTOSTREAM_READ_STORE and
    PHOTOSTREAM_MEDIA_STORE (see `photostream stack env`) for Kafka, Cassandra and MinIO.
    """


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
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level, access_log=False)


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
    generated photo posts, all through the command handlers, with a progress bar.

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
def worker(threads: int | None, log_level: str | None) -> None:
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

    _migrate(settings)
    projectors = all_projectors(projection_settings(settings))
    topology = KafkaTopology.from_url(settings.event_store)
    asyncio.run(create_lane_topics(topology, projectors))
    store = CassandraReadStore.from_url(settings.read_store)
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


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


main.add_command(stack)
