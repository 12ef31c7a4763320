"""`photostream stack ...`: run Kafka, Cassandra and MinIO on loopback, without Docker.

The main CLI mounts this group with `main.add_command(stack)`; until then
`python -m stack` runs it on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stack import config, services
from stack.layout import ROOT_ENV, SERVICES, default_root

_ONLY_HELP = (
    "Comma-separated subset of services to act on: "
    f"{','.join(SERVICES)} (default: all)."
)


def _only(value: str | None) -> tuple[str, ...]:
    try:
        return services.parse_services(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--only") from error


@click.group(name="stack")
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Stack folder for downloads, builds and run data "
    f"(default: ${ROOT_ENV} or ~/.cache/photostream/stack).",
)
@click.pass_context
def stack(ctx: click.Context, root: Path | None) -> None:
    """Run the real services of distributed mode on this machine, without Docker.

    Kafka (KRaft, one node) and Cassandra come as jars from Maven Central, MinIO is
    built with `go install`; everything is cached in one folder so later starts take
    seconds. The services listen on 127.0.0.1 only and keep running after the command
    exits.

    \b
    Typical use:
      photostream stack up
      eval "$(photostream stack env)"
      photostream serve
    """
    ctx.obj = root.expanduser().resolve() if root else default_root()


@stack.command()
@click.option("--only", default=None, metavar="SERVICES", help=_ONLY_HELP)
@click.option(
    "--fresh", is_flag=True, help="Stop the services and wipe their run data first."
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="How long to wait for each service to become ready after it starts "
    "(default: kafka 120, cassandra 240, minio 60).",
)
@click.pass_obj
def up(root: Path, only: str | None, fresh: bool, timeout: float | None) -> None:
    """Fetch what is missing, start what is not running, wait until ready.

    Idempotent: a service already running is left alone, downloads and builds are
    reused. The first run fetches ~120 MB of jars and builds MinIO (about 5 minutes
    on 2 cores); later runs start in seconds. On failure it shows the end of the
    service's log and what to do.
    """
    from stack.display import live_progress, print_failures, print_up_report

    names = _only(only)
    try:
        with live_progress(names) as report:
            outcome = services.up(names, root=root, fresh=fresh, timeout=timeout, report=report)
    except services.StackError as error:
        print_failures(error)
        sys.exit(1)
    print_up_report(outcome)
    click.echo('Ready. Point photostream at it with: eval "$(photostream stack env)"', err=True)


@stack.command()
@click.option("--only", default=None, metavar="SERVICES", help=_ONLY_HELP)
@click.option(
    "--wipe",
    is_flag=True,
    help="Also delete their run data (topics, tables, objects, logs); downloads are kept.",
)
@click.pass_obj
def down(root: Path, only: str | None, wipe: bool) -> None:
    """Stop the services that `stack up` started (SIGTERM, then SIGKILL after 30s).

    Only processes recorded in this stack's pid files are signalled; anything else
    listening on the same ports is left alone.
    """
    outcome = services.down(_only(only), root=root, wipe=wipe)
    for name, what in outcome.items():
        click.echo(f"{name}: {what}", err=True)


@stack.command()
@click.pass_obj
def status(root: Path) -> None:
    """Show each service's version, pid, address, state, memory, data and log paths.

    States: running (answers on its port), starting (process up, not answering yet),
    stopped, port busy (something this stack did not start holds the port).
    """
    from rich.console import Console

    from stack.display import status_table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 140)  # piped: do not fold paths at 80 columns
    console.print(status_table(services.status(root), root))


@stack.command()
@click.option("--only", default=None, metavar="SERVICES", help=_ONLY_HELP)
def env(only: str | None) -> None:
    """Print `export PHOTOSTREAM_...=...` lines for the stack.

    Use as `eval "$(photostream stack env)"` so that `photostream serve` and
    `photostream worker` use Kafka, Cassandra and MinIO instead of the embedded stores.
    """
    click.echo(config.render_env_exports(services.env(_only(only))), nl=False)
