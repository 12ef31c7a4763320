"""Writes per event of each projector, folding a follow graph's history into SQLite.

The history is what `photostream seed --posts-per-account 0` appends for an edge list:
one AccountRegistered per node (user<id>, "User <id>"), then a Followed each way per
edge. Every event is projected by every projector and applied, as the embedded runner
does; the writes each projector returns are counted by event type.

    python -m bench.search_writes [--graph ../shared/datasets/socfb-Reed98/socfb-Reed98.edges]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from domain.events import AccountRegistered, Event, Followed, new_event
from domain.ids import IdGenerator
from projections.registry import all_projectors, all_tables
from projections.sqlite_store import SqliteReadStore

DEFAULT_GRAPH = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "socfb-Reed98" / "socfb-Reed98.edges"


def graph_history(path: Path) -> list[Event]:
    ids = IdGenerator(worker=3)
    edges: list[tuple[str, str]] = []
    nodes: dict[str, None] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith(("%", "#")):
            continue
        a, b = line.split()[:2]
        nodes.setdefault(a)
        nodes.setdefault(b)
        if a != b:
            edges.append((a, b))
    account = {node: str(ids.next_id()) for node in nodes}
    events = [new_event(AccountRegistered(account[n], f"user{n}", f"User {n}", "h"), stream=account[n], actor=account[n]) for n in nodes]
    for a, b in edges:
        for x, y in ((a, b), (b, a)):
            events.append(new_event(Followed(account[x], account[y], str(ids.next_id())), stream=f"follow-{account[x]}-{account[y]}", actor=account[x]))
    return events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graph", type=Path, default=DEFAULT_GRAPH)
    args = parser.parse_args()
    events = graph_history(args.graph)
    projectors = all_projectors()
    writes: Counter[tuple[str, str]] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteReadStore(Path(tmp) / "views.db")
        store.ensure_tables(all_tables(projectors))
        with store.unit_of_work():
            for event in events:
                for projector in projectors:
                    if projector.handles(event):
                        out = projector.project(event, store)
                        writes[(projector.name, event.type)] += len(out)
                        store.apply(out)
        store.close()
    types = Counter(e.type for e in events)
    print(f"{len(events)} events ({dict(types)}) folded in {time.perf_counter() - started:.1f} s")
    print(f"{'projector':<16} {'event':<20} {'writes':>9} {'per event':>9}")
    for (name, type_), n in sorted(writes.items()):
        print(f"{name:<16} {type_:<20} {n:>9} {n / types[type_]:>9.2f}")
    total = sum(writes.values())
    search = sum(n for (name, _), n in writes.items() if name == "search")
    print(f"all projectors: {total} writes, {total / len(events):.2f} per event; search: {search} ({search / len(events):.2f} per event)")


if __name__ == "__main__":
    main()
