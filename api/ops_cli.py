"""`photostream events ...` and `photostream projections ...`: the analyst's and the
operator's commands. They read the log through streams.log_reader (on Kafka a plain
consumer without a group) and fold it through streams.rebuild."""
from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from api.settings import Settings

err = Console(stderr=True)


def _settings() -> Settings:
    from api.cli import load_settings  # api.cli registers these groups: import it late

    return load_settings()


# ----- shared options ---------------------------------------------------------------


def filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--type", "types", multiple=True, help="Only events of this type (repeatable), e.g. --type PostCreated."),
        click.option("--stream", "streams", multiple=True, help="Only events of this stream (repeatable), e.g. --stream post-123."),
        click.option("--since", default=None, help="Only events that occurred at or after this RFC 3339 time."),
        click.option("--until", default=None, help="Only events that occurred before this RFC 3339 time."),
        click.option("--from-position", type=click.IntRange(0), default=None, help="First position to read (in every partition)."),
        click.option("--to-position", type=click.IntRange(0), default=None, help="Last position to read (in every partition)."),
        click.option("--event-store", default=None, help="Log to read (default: $PHOTOSTREAM_EVENT_STORE)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_filter(types: tuple[str, ...], streams: tuple[str, ...], since: str | None, until: str | None, from_position: int | None, to_position: int | None):  # noqa: ANN201
    from domain.events import EVENT_TYPES
    from streams.log_reader import EventFilter

    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise click.BadParameter(f"unknown event type {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}", param_hint="--type")
    try:
        return EventFilter.build(types, streams, since, until, from_position, to_position)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def open_reader(url: str | None, settings: Settings):  # noqa: ANN201
    from streams.log_reader import LogReader

    try:
        return LogReader.open(url or settings.event_store)
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from exc
    except Exception as exc:  # Kafka not answering, and the like
        raise click.ClickException(f"cannot read the log: {exc}") from exc


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
        disable=not err.is_terminal and "PHOTOSTREAM_PROGRESS" not in __import__("os").environ,
    )


class Rate:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, done: int) -> str:
        seconds = time.perf_counter() - self.started
        return f"{done / seconds:,.0f} events/s" if seconds > 0 else ""


# ----- events -----------------------------------------------------------------------


@click.group()
def events() -> None:
    """Read the event log: follow it, export it for analysis, replay it into a model."""


@events.command()
@filter_options
@click.option("--from-start", is_flag=True, help="Print the whole log first, then follow (default: only new events).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Stop after this many events.")
def tail(types, streams, since, until, from_position, to_position, event_store, from_start, limit) -> None:  # noqa: ANN001
    """Follow the log: print each new event as one JSON line (secrets redacted) until ^C."""
    settings = _settings()
    where = build_filter(types, streams, since, until, from_position, to_position)
    from domain.events import EventDecodeError, Recorded, decode_event
    from streams.log_reader import event_row

    shown = 0
    with open_reader(event_store, settings) as reader:
        try:
            for raw in reader.follow(where, from_head=not from_start and from_position is None):
                try:
                    recorded = Recorded(decode_event(raw.body), raw.partition, raw.position)
                except EventDecodeError as exc:
                    err.print(f"[red]undecodable event at {raw.partition}/{raw.position}: {exc}")
                    continue
                if not where.matches(recorded):
                    continue
                click.echo(orjson.dumps(event_row(recorded)).decode())
                shown += 1
                if limit is not None and shown >= limit:
                    return
        except KeyboardInterrupt:
            pass


EXPORT_BATCH = 50_000


@events.command()
@filter_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), required=True, help="JSON Lines, or Parquet (DuckDB, pandas, polars).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write ('-' for stdout, jsonl only).")
def export(types, streams, since, until, from_position, to_position, event_store, fmt, output) -> None:  # noqa: ANN001
    """Export the log (or a filtered slice) to a file, with a progress bar and a summary.

    One row per event: event_id, type, version, stream, partition, position, occurred_at,
    actor, correlation_id, causation_id, data (JSON text, old versions upcast, secrets
    redacted). Reads up to the log's head when the export starts.
    """
    settings = _settings()
    where = build_filter(types, streams, since, until, from_position, to_position)
    if fmt == "parquet" and str(output) == "-":
        raise click.BadParameter("Parquet needs a file", param_hint="--output")
    if str(output) != "-" and not output.parent.exists():
        raise click.BadParameter(f"folder {output.parent} does not exist", param_hint="--output")
    with open_reader(event_store, settings) as reader:
        summary = export_events(reader, where, fmt, output)
    err.print(summary.describe(output))


class ExportSummary:
    def __init__(self) -> None:
        self.rows = 0
        self.by_type: Counter[str] = Counter()
        self.seconds = 0.0
        self.undecodable = 0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def describe(self, output: Path) -> str:
        lines = [f"exported {self.rows:,} events to {output} in {self.seconds:.1f} s ({self.rate:,.0f} events/s)"]
        lines += [f"  {name:<20} {count:>10,}" for name, count in sorted(self.by_type.items())]
        if self.undecodable:
            lines.append(f"  skipped {self.undecodable} undecodable events")
        return "\n".join(lines)


def export_events(reader: Any, where: Any, fmt: str, output: Path) -> ExportSummary:
    """The one export routine (the CLI and bench/export.py)."""
    from streams.log_reader import export_rows

    summary = ExportSummary()
    started = time.perf_counter()
    total = reader.size(where)
    rate = Rate()
    with progress_bar() as bar:
        task = bar.add_task("export", total=total, rate="")

        def rows() -> Iterator[dict[str, Any]]:
            for row in export_rows(reader, where):
                summary.rows += 1
                summary.by_type[row["type"]] += 1
                if summary.rows % 5000 == 0:
                    bar.update(task, completed=summary.rows, rate=rate(summary.rows))
                yield row

        if fmt == "jsonl":
            _write_jsonl(rows(), output)
        else:
            _write_parquet(rows(), output)
        bar.update(task, completed=summary.rows, total=max(summary.rows, total or 0), rate=rate(summary.rows))
    summary.seconds = time.perf_counter() - started
    summary.undecodable = reader.undecodable
    return summary


def _write_jsonl(rows: Iterator[dict[str, Any]], output: Path) -> None:
    out = sys.stdout.buffer if str(output) == "-" else open(output, "wb")
    try:
        for row in rows:
            row["data"] = orjson.Fragment(row["data"])  # nested JSON in JSON Lines, as stored
            out.write(orjson.dumps(row) + b"\n")
    finally:
        if out is not sys.stdout.buffer:
            out.close()


PARQUET_COLUMNS = ("event_id", "type", "version", "stream", "partition", "position", "occurred_at", "actor", "correlation_id", "causation_id", "data")


def parquet_schema():  # noqa: ANN201
    import pyarrow as pa

    return pa.schema(
        [
            ("event_id", pa.string()),
            ("type", pa.string()),
            ("version", pa.int32()),
            ("stream", pa.string()),
            ("partition", pa.int32()),
            ("position", pa.int64()),
            ("occurred_at", pa.timestamp("ms", tz="UTC")),
            ("actor", pa.string()),
            ("correlation_id", pa.string()),
            ("causation_id", pa.string()),
            ("data", pa.string()),
        ]
    )


def _write_parquet(rows: Iterator[dict[str, Any]], output: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    with pq.ParquetWriter(output, schema, compression="zstd") as writer:
        columns: dict[str, list[Any]] = {c: [] for c in PARQUET_COLUMNS}

        def flush() -> None:
            if columns["event_id"]:
                arrays = [
                    # Arrow parses the RFC 3339 text itself, much faster than datetimes from Python.
                    pa.array(columns[name]).cast(schema.field(name).type) if name == "occurred_at" else pa.array(columns[name], schema.field(name).type)
                    for name in PARQUET_COLUMNS
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                for values in columns.values():
                    values.clear()

        for row in rows:
            for name in PARQUET_COLUMNS:
                columns[name].append(row[name])
            if len(columns["event_id"]) >= EXPORT_BATCH:
                flush()
        flush()


@events.command()
@filter_options
@click.option("--into", "into", multiple=True, required=True, help="Projector to fold through (repeatable); see `photostream projections status`.")
@click.option(
    "--output",
    required=True,
    help="A fresh read store: a new SQLite file path (or sqlite:///path), or cassandra://host:port/keyspace.",
)
def replay(types, streams, since, until, from_position, to_position, event_store, into, output) -> None:  # noqa: ANN001
    """Fold the log, a slice of it, or the log up to a time (--until), through projectors
    into a fresh, separate read store: "what did the feed look like at T?", or a new
    projection tried without touching production."""
    from api.wiring import projection_settings
    from projections.registry import all_projectors
    from streams.rebuild import open_read_store, replay as run_replay

    settings = _settings()
    where = build_filter(types, streams, since, until, from_position, to_position)
    known = {p.name: p for p in all_projectors(projection_settings(settings))}
    missing = [n for n in into if n not in known]
    if missing:
        raise click.BadParameter(f"unknown projector {', '.join(missing)}; known: {', '.join(sorted(known))}", param_hint="--into")
    _check_fresh_output(output, settings)
    try:
        store = _open_store(output, open_read_store)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--output") from exc
    try:
        with open_reader(event_store, settings) as reader:
            total = reader.size(where)
            rate = Rate()
            with progress_bar() as bar:
                task = bar.add_task("replay", total=total, rate="")
                report = run_replay(
                    reader,
                    [known[n] for n in into],
                    store,
                    where,
                    on_progress=lambda done: bar.update(task, completed=done, rate=rate(done)),
                )
    finally:
        store.close()
    err.print(
        f"replayed {report.events:,} events ({report.applied:,} applied, {report.dead_letters} dead letters) "
        f"through {', '.join(into)} into {output} in {report.seconds:.1f} s ({report.rate:,.0f} events/s)"
    )


def _check_fresh_output(output: str, settings: Settings) -> None:
    if output in (settings.read_store, str(settings.data_dir / "views.db")) or output.rstrip("/") == settings.read_store.rstrip("/"):
        raise click.BadParameter("that is the live read store; replay writes to a fresh, separate one", param_hint="--output")
    if output.startswith("cassandra:"):
        return
    from streams.sqlite_event_store import sqlite_path

    try:
        path = sqlite_path(output) if output.startswith("sqlite:") else Path(output)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--output") from exc
    if path.exists():
        raise click.BadParameter(f"{path} exists; replay writes into a fresh store (pick a new path)", param_hint="--output")
    if not path.parent.exists():
        raise click.BadParameter(f"folder {path.parent} does not exist", param_hint="--output")


# ----- projections ------------------------------------------------------------------


@click.group()
def projections() -> None:
    """See, rebuild and verify the projections (read models), and their dead letters."""


def _backend(settings: Settings):  # noqa: ANN202
    from api.wiring import open_backend

    return open_backend(settings, run_projections=False)


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@projections.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document (for scripts) instead of a table.")
def status(as_json: bool) -> None:
    """Each projection's name, active version, position, lag and state."""
    settings = _settings()
    backend = _backend(settings)

    async def collect() -> list[Any]:
        await backend.start()
        try:
            return await backend.progress()
        finally:
            await backend.close()

    rows = _run(collect())
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "items": [
                        {
                            "name": p.name,
                            "version": p.version,
                            "building": p.building,
                            "position": p.position,
                            "lag_events": p.lag_events,
                            "lag_seconds": p.lag_seconds,
                            "status": p.status,
                        }
                        for p in rows
                    ]
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
        return
    table = RichTable(title="projections")
    for column in ("name", "version", "position", "lag (events)", "lag (s)", "state"):
        table.add_column(column, justify="right" if column not in ("name", "state") else "left")
    for p in rows:
        state = p.status + (f" (building v{p.building})" if p.building else "")
        colour = "green" if p.status == "live" else ("red" if p.status == "stopped" else "yellow")
        table.add_row(
            p.name, f"v{p.version}", f"{p.position:,}", f"{p.lag_events:,}", "" if p.lag_seconds is None else f"{p.lag_seconds:.1f}", f"[{colour}]{state}"
        )
    Console().print(table)


def _versioned(settings: Settings):  # noqa: ANN202
    from api.wiring import projection_settings
    from projections.registry import all_projectors
    from projections.versions import VersionedStore
    from streams.rebuild import open_read_store

    projectors = all_projectors(projection_settings(settings))  # exactly what serve and worker run
    inner = _open_store(settings.read_store, open_read_store)
    try:
        return projectors, _retrying(lambda: VersionedStore(inner, projectors))
    except BaseException:
        inner.close()
        raise


def _retrying(make: Callable[[], Any], attempts: int = 5) -> Any:
    """A busy Cassandra may time out a schema statement: try again before giving up."""
    from projections.store import ReadStoreUnavailable

    for attempt in range(1, attempts + 1):
        try:
            return make()
        except ReadStoreUnavailable as exc:
            if attempt == attempts:
                raise click.ClickException(f"the read store does not answer: {exc}") from exc
            err.print(f"[yellow]the read store does not answer ({exc}); trying again")
            time.sleep(2 * attempt)


def _open_store(url: str, opener: Callable[[str], Any]) -> Any:
    return _retrying(lambda: opener(url))


def _lanes(settings: Settings) -> int | None:
    if settings.embedded:
        return None
    from streams.faust_app import KafkaTopology

    return KafkaTopology.from_url(settings.event_store).partitions


@projections.command()
@click.argument("name")
@click.option("--grace", type=click.FloatRange(0.5, 600), default=3.0, show_default=True, help="Seconds between the switch and dropping the old version.")
def rebuild(name: str, grace: float) -> None:
    """Build NAME's next version beside the live one from the start of the log, switch
    queries to it once it has caught up, then drop the old one. Queries keep answering
    (from the old version until the switch); the other projections go on."""
    from streams.rebuild import RebuildError, rebuild as run_rebuild

    settings = _settings()
    projectors, store = _versioned(settings)
    projector = next((p for p in projectors if p.name == name), None)
    if projector is None:
        raise click.BadParameter(f"unknown projection {name!r}; known: {', '.join(p.name for p in projectors)}", param_hint="NAME")
    try:
        with open_reader(None, settings) as reader, progress_bar() as bar:
            task = bar.add_task(f"rebuild {name}", total=None, rate="")
            rate = Rate()
            report = run_rebuild(
                reader,
                projector,
                store,
                lanes=_lanes(settings),
                grace=grace,
                on_phase=lambda text: bar.console.print(text),
                on_progress=lambda done, total: bar.update(task, completed=done, total=total, rate=rate(done)),
            )
    except RebuildError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    err.print(
        f"rebuilt {name}: v{report.old_version} -> v{report.new_version}, {report.fold.events:,} events folded "
        f"in {report.fold.seconds:.1f} s ({report.fold.rate:,.0f} events/s), {report.fold.dead_letters} dead letters; "
        f"switched at {report.switched_at}; dropped {', '.join(report.dropped)}"
    )


@projections.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The differences as JSON.")
def verify(name: str, as_json: bool) -> None:
    """Compare NAME with a fresh fold of the log (up to the position NAME has applied)
    and report every difference. Exit status 1 when they differ."""
    from streams.rebuild import RebuildError, verify as run_verify

    settings = _settings()
    projectors, store = _versioned(settings)
    projector = next((p for p in projectors if p.name == name), None)
    if projector is None:
        raise click.BadParameter(f"unknown projection {name!r}; known: {', '.join(p.name for p in projectors)}", param_hint="NAME")
    try:
        with open_reader(None, settings) as reader:
            report = run_verify(reader, projector, store, lanes=_lanes(settings))
    except RebuildError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "projection": name,
                    "version": report.version,
                    "positions": {str(k): v for k, v in report.positions.items()},
                    "rows": report.rows,
                    "differences": [
                        {"table": d.table, "key": d.key, "kind": d.kind, "live": d.live, "fold": d.fresh} for d in report.differences
                    ],
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        for d in report.differences:
            click.echo(d.describe())
        click.echo(
            f"{name} v{report.version}: {report.rows:,} rows compared with a fresh fold up to "
            f"{report.positions}: {len(report.differences)} differences"
        )
    if report.differences:
        sys.exit(1)


@projections.group(name="dead-letters", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@click.pass_context
def dead_letters(ctx: click.Context, as_json: bool) -> None:
    """List the events a projection could not apply (parked after retries)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    _, store = _versioned(settings)
    try:
        letters = store.dead_letters()
    finally:
        store.close()
    if as_json:
        click.echo(
            orjson.dumps(
                [
                    {k: getattr(d, k) for k in ("projection", "partition", "position", "event_id", "event_type", "error", "failed_at")}
                    for d in letters
                ],
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
        return
    table = RichTable(title=f"dead letters ({len(letters)})")
    for column in ("projection", "partition/position", "event", "failed at", "error"):
        table.add_column(column)
    for d in letters:
        table.add_row(d.projection, f"{d.partition}/{d.position}", f"{d.event_type} {d.event_id}", d.failed_at, d.error)
    Console().print(table)


@dead_letters.command(name="retry")
@click.option("--projection", default=None, help="Only this projection's dead letters.")
def retry_dead_letters(projection: str | None) -> None:
    """Apply the parked events again (after a fix); those that now apply are removed from
    the list, the others stay with their new error."""
    from streams.dead_letters import retry_all

    settings = _settings()
    projectors, store = _versioned(settings)
    if projection is not None and projection not in {p.name for p in projectors}:
        raise click.BadParameter(f"unknown projection {projection!r}", param_hint="--projection")
    try:
        fixed, failed = retry_all(store, projectors, projection)
    finally:
        store.close()
    click.echo(f"retried {fixed + failed} dead letters: {fixed} applied, {failed} still failing")
    if failed:
        sys.exit(1)
