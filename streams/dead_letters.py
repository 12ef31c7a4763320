"""Retrying parked events (dead letters) once the cause is fixed."""
from __future__ import annotations

import traceback
from typing import Sequence

from domain.events import EventDecodeError, decode_event, format_time, utc_now
from projections.projector import Projector
from projections.store import DeadLetter
from projections.versions import VersionedStore

DECODE = "(decode)"  # the runners park an event no projector could read under this name


def retry_all(store: VersionedStore, projectors: Sequence[Projector], projection: str | None = None) -> tuple[int, int]:
    """Apply each dead letter again through its projector (into the active version).
    Returns (applied, still failing). An applied letter is removed; a failing one is
    kept with its new error. The event is applied now, after later events of its key:
    the projectors are idempotent, so this is right for the usual case, a letter whose
    later events could not apply either (retry them all, in order, which this does)."""
    by_name = {p.name: p for p in projectors}
    applied = failing = 0
    letters = sorted(store.dead_letters(), key=lambda d: (d.partition, d.position, d.projection))
    for letter in letters:
        if projection is not None and letter.projection != projection:
            continue
        try:
            event = decode_event(letter.body)
            targets = [by_name[letter.projection]] if letter.projection in by_name else (
                [p for p in projectors if p.handles(event)] if letter.projection == DECODE else []
            )
            if not targets:
                raise LookupError(f"no projection named {letter.projection!r} runs here")
            for projector in targets:
                with store.unit_of_work():
                    store.apply(projector.project(event, store))
        except (EventDecodeError, Exception) as exc:  # keep it parked, with what failed now
            failing += 1
            store.add_dead_letter(
                DeadLetter(
                    letter.projection,
                    letter.partition,
                    letter.position,
                    letter.event_id,
                    letter.event_type,
                    "".join(traceback.format_exception_only(exc)).strip(),
                    letter.body,
                    format_time(utc_now()),
                )
            )
            continue
        store.inner.remove_dead_letter(letter.projection, letter.partition, letter.position)  # type: ignore[attr-defined]
        applied += 1
    return applied, failing
