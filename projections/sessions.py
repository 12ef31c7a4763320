"""Read model `sessions`: each account's session generation, checked on every request.

Signing out everywhere appends SessionsRevoked with the new generation; a bearer token
carries the generation it was issued in and api.http refuses it when this table holds a
newer one. The generation is absolute, so a replayed or duplicated event is harmless,
and an account with no row has generation 0.
"""
from __future__ import annotations

from domain.events import Event, SessionsRevoked
from projections.projector import Projector, on
from projections.store import ReadView, Table, Upsert, Write

SESSION_GENERATIONS = Table("session_generations", {"account_id": "int", "generation": "int"}, ("account_id",))


class Sessions(Projector):
    name = "sessions"
    tables = (SESSION_GENERATIONS,)

    @on(SessionsRevoked, key=lambda e: e.account_id)
    def revoked(self, e: SessionsRevoked, event: Event, view: ReadView) -> list[Write]:
        current = view.get(SESSION_GENERATIONS, {"account_id": int(e.account_id)})
        if current is not None and int(current["generation"]) >= e.generation:
            return []  # never lower it (an older event seen again)
        return [Upsert(SESSION_GENERATIONS, {"account_id": int(e.account_id), "generation": e.generation})]


def session_generation(view: ReadView, account_id: int) -> int:
    row = view.get(SESSION_GENERATIONS, {"account_id": account_id})
    return int(row["generation"]) if row else 0
