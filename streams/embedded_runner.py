"""The embedded projection runner: feeds the SQLite log to every projector in order.

Each batch of events is applied in one read-store transaction together with every
projector's checkpoint, so after a crash nothing is applied twice or skipped. A projector
that fails on an event is retried once; then the event is parked as a dead letter for
that projector (its writes for that event undone) and the others go on.
"""
from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Callable

from domain.events import Event, EventDecodeError, UnknownEvent, decode_event, format_time, utc_now
from observability.metrics import EVENTS_SKIPPED
from projections.projector import Projector
from projections.sqlite_store import SqliteReadStore
from projections.store import Checkpoint, DeadLetter
from streams.sqlite_event_store import SqliteEventStore

log = logging.getLogger("photostream.runner")

PARTITION = 0  # the embedded log has one partition


@dataclass
class BatchReport:
    events: int
    position: int
    dead_letters: int


class EmbeddedRunner:
    def __init__(
        self,
        events: SqliteEventStore,
        views: SqliteReadStore,
        projectors: list[Projector],
        *,
        batch_size: int = 500,
    ) -> None:
        self.events = events
        self.views = views
        self.projectors = projectors
        self.batch_size = batch_size
        views.ensure_tables(t for p in projectors for t in p.tables)
        self._positions = self._load_positions()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        # Called (in the runner's thread) with each batch's events once the read models
        # have them committed: the live stream's source in embedded mode.
        self.listeners: list[Callable[[list[Event]], None]] = []

    def _load_positions(self) -> dict[str, int]:
        saved = {c.projection: c.position for c in self.views.load_checkpoints() if c.partition == PARTITION}
        return {p.name: saved.get(p.name, 0) for p in self.projectors}

    @property
    def position(self) -> int:
        """How far every projector has got (the slowest one)."""
        return min(self._positions.values(), default=0)

    def run_batch(self) -> BatchReport:
        with self.views.unit_of_work():
            report, positions, applied = self._run_batch()
        self._positions = positions  # only once the batch committed
        for listener in self.listeners:  # the live stream: told only of committed events
            try:
                listener(applied)
            except Exception:  # a listener's fault must not stop the projections
                log.exception("live listener failed")
        return report

    def _run_batch(self) -> tuple[BatchReport, dict[str, int], list[Event]]:
        # Inside the transaction: a rebuild's switch of a projection's active version
        # (projections.versions) commits wholly before or after this batch.
        refresh = getattr(self.views, "refresh", None)
        if refresh is not None and refresh():
            self._positions = self._load_positions()
        rows = self.events.read_raw(self.position, self.batch_size)
        if not rows:
            return BatchReport(0, self.position, 0), self._positions, []
        dead = 0
        last_time: str | None = None
        applied: list[Event] = []
        for position, _, body in rows:
            try:
                event = decode_event(body)
            except EventDecodeError as exc:
                dead += self._park_undecodable(position, body, exc)
                continue
            last_time = format_time(event.occurred_at)
            if isinstance(event.data, UnknownEvent):  # written by newer code: skipped, counted
                EVENTS_SKIPPED.inc(type=event.type)
                continue
            applied.append(event)
            for projector in self.projectors:
                if position <= self._positions[projector.name] or not projector.handles(event):
                    continue
                dead += self._apply(projector, event, position, body)
        last = rows[-1][0]
        self.views.save_checkpoints(
            [Checkpoint(p.name, PARTITION, max(last, self._positions[p.name]), last_time) for p in self.projectors]
        )
        return BatchReport(len(rows), last, dead), {p.name: max(last, self._positions[p.name]) for p in self.projectors}, applied

    def _apply(self, projector: Projector, event, position: int, body: bytes) -> int:
        error: Exception | None = None
        for _attempt in range(2):
            try:
                with self.views.savepoint():
                    self.views.apply(projector.project(event, self.views))
                return 0
            except Exception as exc:  # a poison event must not stop the world
                error = exc
        log.error(
            "projector %s failed on event %s at %s: %s",
            projector.name,
            event.event_id,
            position,
            error,
            extra={"correlation_id": event.correlation_id},  # the command that caused it
        )
        self.views.add_dead_letter(
            DeadLetter(
                projection=projector.name,
                partition=PARTITION,
                position=position,
                event_id=event.event_id,
                event_type=event.type,
                error="".join(traceback.format_exception_only(error)).strip(),
                body=body,
                failed_at=format_time(utc_now()),
            )
        )
        return 1

    def _park_undecodable(self, position: int, body: bytes, exc: Exception) -> int:
        log.error("event at position %s cannot be decoded: %s", position, exc)
        self.views.add_dead_letter(
            DeadLetter("(decode)", PARTITION, position, "", "?", str(exc), body, format_time(utc_now()))
        )
        return 1

    def catch_up(self, on_batch: Callable[[BatchReport], None] | None = None) -> int:
        """Apply everything the log holds now; returns how many events were read."""
        total = 0
        while True:
            report = self.run_batch()
            if report.events == 0:
                return total
            total += report.events
            if on_batch:
                on_batch(report)

    # ----- background thread ----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projection-runner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.run_batch().events == 0:
                    self.events.wait_for_new(self.position, timeout=0.5)
        except BaseException as exc:  # surfaced through /readyz and the log
            self.error = exc
            log.exception("projection runner stopped")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
