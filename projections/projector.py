"""The shape of every projector: one read model, event in, idempotent writes out.

A projector reads what it needs through a ReadView and returns the writes; it never
writes itself, so the same projector runs in the embedded runner (one SQLite
transaction) and in a Faust agent (Cassandra batches). `key()` names what its writes for
an event must be serialized by (exact counts): Faust routes events by that key so one
worker at a time touches a given counter.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

from domain.events import DomainEvent, Event
from projections.store import ReadView, Table, Write

Handler = Callable[[Any, Any, Event, ReadView], list[Write]]
KeyOf = Callable[[Any], str]


def on(event_type: type[DomainEvent], *, key: KeyOf) -> Callable[[Handler], Handler]:
    """Mark a method as this projector's handler for event_type, writes keyed by key(data)."""

    def mark(method: Handler) -> Handler:
        method.__projects__ = (event_type, key)  # type: ignore[attr-defined]
        return method

    return mark


class Projector:
    name: ClassVar[str]
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]]
    _handlers: ClassVar[dict[type[DomainEvent], tuple[str, KeyOf]]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._handlers = {}
        for attr, member in vars(cls).items():
            marked = getattr(member, "__projects__", None)
            if marked is not None:
                event_type, key = marked
                cls._handlers[event_type] = (attr, key)

    @classmethod
    def handled_types(cls) -> frozenset[str]:
        return frozenset(t.TYPE for t in cls._handlers)

    def handles(self, event: Event) -> bool:
        return type(event.data) in self._handlers

    def key(self, event: Event) -> str:
        _, key = self._handlers[type(event.data)]
        return key(event.data)

    def project(self, event: Event, view: ReadView) -> list[Write]:
        found = self._handlers.get(type(event.data))
        if found is None:
            return []
        method, _ = found
        return getattr(self, method)(event.data, event, view)
