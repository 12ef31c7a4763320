"""One shape shared by followers, following and likes: a newest-first list of edges per
owner, an index to find an edge by the other party, and an exact count.

Counts are decided against the edge index (is this edge new?) and written as absolute
values, so a repeated event changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from projections.store import Delete, ReadView, Row, Table, Upsert, Write


@dataclass(frozen=True)
class EdgeList:
    listing: Table  # (owner, sort_id DESC) -> other
    index: Table  # (owner, other) -> sort_id
    counts: Table  # owner -> count
    owner: str
    other: str
    sort: str

    @staticmethod
    def define(name: str, owner: str, other: str, sort: str) -> EdgeList:
        return EdgeList(
            listing=Table(name, {owner: "int", sort: "int", other: "int"}, (owner,), sort, descending=True),
            index=Table(f"{name}_index", {owner: "int", other: "int", sort: "int"}, (owner,), other),
            counts=Table(f"{name}_counts", {owner: "int", "count": "int"}, (owner,)),
            owner=owner,
            other=other,
            sort=sort,
        )

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.listing, self.index, self.counts)

    def count(self, view: ReadView, owner: int) -> int:
        row = view.get(self.counts, {self.owner: owner})
        return int(row["count"]) if row else 0

    def add(self, view: ReadView, owner: int, other: int, sort_id: int) -> list[Write]:
        if view.get(self.index, {self.owner: owner, self.other: other}) is not None:
            return []
        return [
            Upsert(self.listing, {self.owner: owner, self.sort: sort_id, self.other: other}),
            Upsert(self.index, {self.owner: owner, self.other: other, self.sort: sort_id}),
            Upsert(self.counts, {self.owner: owner, "count": self.count(view, owner) + 1}),
        ]

    def remove(self, view: ReadView, owner: int, other: int) -> list[Write]:
        edge = view.get(self.index, {self.owner: owner, self.other: other})
        if edge is None:
            return []
        return [
            Delete(self.listing, {self.owner: owner, self.sort: edge[self.sort]}),
            Delete(self.index, {self.owner: owner, self.other: other}),
            Upsert(self.counts, {self.owner: owner, "count": max(self.count(view, owner) - 1, 0)}),
        ]

    def has(self, view: ReadView, owner: int, other: int) -> bool:
        return view.get(self.index, {self.owner: owner, self.other: other}) is not None

    def page(self, view: ReadView, owner: int, cursor: int | None, limit: int) -> list[Row]:
        """Newest first; the cursor is the sort id of the last row of the previous page."""
        return view.scan(self.listing, {self.owner: owner}, start_after=cursor, limit=limit)

    def all_others(self, view: ReadView, owner: int) -> list[int]:
        return [r[self.other] for r in view.scan(self.index, {self.owner: owner})]
