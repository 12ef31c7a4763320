"""Terminal output of the stack commands (rich), kept apart from the logic."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from stack.services import Reporter, ServiceStatus, StackError, UpReport

# Progress and tables go to stderr so that stdout stays clean for `eval "$(... env)"`.
err_console = Console(stderr=True)


def _is_final(text: str) -> bool:
    return text in ("ready", "failed") or text.startswith("already running")


class _Board:
    """Each service's current phase, and the time since `up` began (frozen when done)."""

    def __init__(self, services: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        now = time.monotonic()
        self._rows: dict[str, tuple[str, float, float | None]] = {
            s: ("queued", now, None) for s in services
        }

    def set(self, service: str, text: str) -> None:
        with self._lock:
            _, began, _ = self._rows.get(service, ("", time.monotonic(), None))
            finished = time.monotonic() if _is_final(text) else None
            self._rows[service] = (text, began, finished)

    def render(self) -> Table:
        table = Table(show_header=False, box=None, padding=(0, 1))
        with self._lock:
            for service, (text, began, finished) in self._rows.items():
                elapsed = (finished or time.monotonic()) - began
                mark = "[cyan]…[/]"
                if _is_final(text):
                    mark = "[red]✘[/]" if text == "failed" else "[green]✔[/]"
                table.add_row(mark, f"[bold]{service}[/]", text, f"[dim]{elapsed:5.1f}s[/]")
        return table


@contextlib.contextmanager
def live_progress(services: tuple[str, ...]) -> Iterator[Reporter]:
    """A live-updating board on stderr; yields the reporter the services call."""
    board = _Board(services)
    try:
        with Live(board.render(), console=err_console, refresh_per_second=4) as live:
            stop = threading.Event()

            def refresh() -> None:
                while not stop.wait(0.25):
                    live.update(board.render())

            ticker = threading.Thread(target=refresh, daemon=True)
            ticker.start()
            try:
                yield board.set
            finally:
                stop.set()
                ticker.join()
                live.update(board.render())
    finally:
        if not err_console.is_terminal:
            err_console.line()  # piped, Live's last frame ends without a newline


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value else "-"


def print_up_report(report: UpReport) -> None:
    table = Table()
    for column in ("service", "action", "pid", "fetch/build", "start → ready"):
        table.add_column(column)
    for r in report.results:
        fetch = _seconds(r.fetch_seconds) if r.fetched else "cached"
        table.add_row(r.service, r.action, str(r.pid or "-"), fetch, _seconds(r.start_seconds))
    err_console.print(table)


def print_failures(error: StackError) -> None:
    for failure in error.failures:
        err_console.rule(f"[red]{failure.service} failed")
        if failure.log_tail:
            err_console.print(f"[dim]last lines of {failure.log}:[/]")
            err_console.print(failure.log_tail.rstrip(), markup=False, highlight=False)
        err_console.print(f"[red]{failure.service}[/]: {failure.message}")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def short_version(version: str) -> str:
    """A Go pseudo-version is 34 characters; its commit date and hash say the same."""
    parts = version.split("-")
    if version.startswith("v0.0.0-") and len(parts) == 3 and len(parts[1]) == 14:
        stamp = parts[1]
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {parts[2][:7]}"
    return version


def _mib(value: int | None) -> str:
    return f"{value / 2**20:.0f} MiB" if value else "-"


def status_table(rows: list[ServiceStatus], root: Path) -> Table:
    """One row per service; paths are shown relative to the stack folder (the caption)."""
    table = Table(caption=f"stack folder: {root}", caption_justify="left")
    for column in ("service", "version", "pid", "address", "state", "rss", "data dir", "log"):
        table.add_column(column, overflow="fold")
    colors = {"running": "green", "starting": "yellow", "stopped": "dim", "port busy": "red"}
    for row in rows:
        state = f"[{colors.get(row.state, 'white')}]{row.state}[/]"
        if row.state == "stopped" and not row.installed:
            state += " [dim](not fetched)[/]"
        table.add_row(
            row.service,
            short_version(row.version),
            str(row.pid or "-"),
            row.address,
            state,
            _mib(row.rss_bytes),
            _relative(row.data_dir, root),
            _relative(row.log_file, root),
        )
    return table
