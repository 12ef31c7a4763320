"""Read model `accounts`: profiles by id and by username."""
from __future__ import annotations

import dataclasses

from domain.events import AccountRegistered, Event, ProfileUpdated, format_time
from projections.projector import Projector, on
from projections.store import ReadView, Table, Upsert, Write

ACCOUNTS = Table(
    "accounts",
    {
        "account_id": "int",
        "username": "text",
        "display_name": "text",
        "bio": "text",
        "avatar": "json",
        "private": "bool",
        "created_at": "text",
    },
    ("account_id",),
)
ACCOUNT_BY_USERNAME = Table("account_by_username", {"username": "text", "account_id": "int"}, ("username",))


class Accounts(Projector):
    name = "accounts"
    tables = (ACCOUNTS, ACCOUNT_BY_USERNAME)

    @on(AccountRegistered, key=lambda e: e.account_id)
    def registered(self, e: AccountRegistered, event: Event, view: ReadView) -> list[Write]:
        account_id = int(e.account_id)
        return [
            Upsert(
                ACCOUNTS,
                {
                    "account_id": account_id,
                    "username": e.username,
                    "display_name": e.display_name,
                    "created_at": format_time(event.occurred_at),
                },
            ),
            Upsert(ACCOUNT_BY_USERNAME, {"username": e.username, "account_id": account_id}),
        ]

    @on(ProfileUpdated, key=lambda e: e.account_id)
    def profile_updated(self, e: ProfileUpdated, event: Event, view: ReadView) -> list[Write]:
        return [
            Upsert(
                ACCOUNTS,
                {
                    "account_id": int(e.account_id),
                    "display_name": e.display_name,
                    "bio": e.bio,
                    "avatar": dataclasses.asdict(e.avatar) if e.avatar else None,
                    "private": e.private,
                },
            )
        ]
