"""`photostream seed`: a realistic network from an edge list, through the command handlers."""
from __future__ import annotations

import asyncio
import io
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from PIL import Image, ImageDraw
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from commands.accounts import USERNAMES, register_account
from commands.context import Actor, Argon2Hasher
from commands.media import store_media
from commands.posts import create_post
from commands.social import follow

from api.settings import Settings
from api.wiring import Backend, open_backend

CONCURRENCY = 8
TAGS = ["sunset", "coffee", "reed", "portland", "bikes", "books", "campus", "rain", "friends", "food", "hike", "cats"]
WORDS = ["morning light", "a quiet corner", "weekend", "finally", "look at this", "on the way home", "new favourite"]


class GraphError(ValueError):
    """The edge list cannot be read; says which line and why."""


def read_edges(path: Path, max_accounts: int | None = None) -> tuple[list[int], list[tuple[int, int]]]:
    """Nodes (sorted) and distinct undirected edges of an edge list."""
    edges: set[tuple[int, int]] = set()
    nodes: set[int] = set()
    with path.open(encoding="utf-8", errors="strict") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text[0] in "%#":
                continue
            parts = text.split()
            if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
                raise GraphError(f"{path}:{number}: expected two node ids 'A B', got {text[:60]!r}")
            a, b = int(parts[0]), int(parts[1])
            nodes.update((a, b))
            if a != b:
                edges.add((min(a, b), max(a, b)))
    if not nodes:
        raise GraphError(f"{path}: no edges found")
    ordered = sorted(nodes)
    if max_accounts is not None:
        keep = set(ordered[:max_accounts])
        ordered = ordered[:max_accounts]
        edges = {e for e in edges if e[0] in keep and e[1] in keep}
    return ordered, sorted(edges)


class PrecomputedHasher:
    """Every seeded account shares one password, so it is hashed (argon2) once."""

    def __init__(self, password: str) -> None:
        self._real = Argon2Hasher()
        self._password = password
        self._hash = self._real.hash(password)

    def hash(self, password: str) -> str:
        return self._hash if password == self._password else self._real.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        return self._real.verify(password_hash, password)


def generated_photo(seed: int, size: int = 480) -> bytes:
    """A colourful abstract picture, the same for the same seed."""
    rng = random.Random(seed)
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        t = y / (size - 1)
        draw.line([(0, y), (size, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    for _ in range(rng.randrange(3, 8)):
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randrange(20, size // 3)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@dataclass
class SeedReport:
    accounts: int
    follows: int
    posts: int
    events: int
    seconds: dict[str, float]

    def __str__(self) -> str:
        total = sum(self.seconds.values())
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        return (
            f"seeded {self.accounts} accounts, {self.follows} follows, {self.posts} posts "
            f"({self.events} events) in {total:.1f}s ({steps})"
        )


async def _run_all(
    progress: Progress, label: str, items: list, work: Callable[[object], Awaitable[None]]
) -> None:
    task = progress.add_task(label, total=len(items))
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(item: object) -> None:
        async with limit:
            await work(item)
        progress.advance(task)

    await asyncio.gather(*(one(i) for i in items))


async def _seed(backend: Backend, nodes: list[int], edges: list[tuple[int, int]], posts_per_account: int, password: str, progress: Progress) -> tuple[int, dict[str, float]]:
    ctx = backend.commands
    ids: dict[int, str] = {}
    timings: dict[str, float] = {}

    async def make_account(node: object) -> None:
        assert isinstance(node, int)
        name = f"user{node}"
        existing = await ctx.events.lookup_unique(USERNAMES, name)
        if existing is not None:  # seeding again is harmless
            ids[node] = existing
            return
        done = await register_account(ctx, name, password, f"User {node}")
        ids[node] = done.value

    async def make_follows(edge: object) -> None:
        a, b = edge  # type: ignore[misc]
        await follow(ctx, Actor(ids[a]), ids[b])
        await follow(ctx, Actor(ids[b]), ids[a])

    async def make_post(job: object) -> None:
        node, n = job  # type: ignore[misc]
        actor = Actor(ids[node])
        stored = await store_media(ctx, actor, generated_photo(node * 1000 + n))
        rng = random.Random(node * 1000 + n)
        caption = f"{rng.choice(WORDS)} #{rng.choice(TAGS)} #{rng.choice(TAGS)}"
        await create_post(ctx, actor, caption, [stored.value.media_id])

    steps: list[tuple[str, list, Callable[[object], Awaitable[None]]]] = [
        ("accounts", list(nodes), make_account),
        ("follows", list(edges), make_follows),
        ("posts", [(node, n) for n in range(posts_per_account) for node in nodes], make_post),
    ]
    for label, items, work in steps:
        started = time.perf_counter()
        await _run_all(progress, label, items, work)
        timings[label] = time.perf_counter() - started
    return sum(1 for _ in ids), timings


def run_seed(settings: Settings, graph: Path, *, posts_per_account: int = 3, max_accounts: int | None = None, password: str = "photostream") -> SeedReport:
    nodes, edges = read_edges(graph, max_accounts)
    backend = open_backend(settings, hasher=PrecomputedHasher(password), run_projections=False, bulk=True)
    columns = (
        TextColumn("[bold]{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )

    async def seed_all(progress: Progress) -> tuple[int, dict[str, float]]:
        await backend.start()
        try:
            before = _appended(await backend.events.head())
            _, timings = await _seed(backend, nodes, edges, posts_per_account, password, progress)
            flush = getattr(backend.events, "flush", None)
            if flush is not None:  # the embedded log was written without per-commit fsync
                flush()
            return _appended(await backend.events.head()) - before, timings
        finally:
            await backend.events.close()

    with Progress(*columns) as progress:
        events, timings = asyncio.run(seed_all(progress))
        started = time.perf_counter()
        _project(backend, progress)
        timings["projections"] = time.perf_counter() - started
    backend.views.close()
    return SeedReport(len(nodes), 2 * len(edges), posts_per_account * len(nodes), events, timings)


def _appended(head: dict[int, int]) -> int:
    """Events in the log: embedded positions start at 1, Kafka offsets at 0."""
    return sum(position + 1 for position in head.values() if position >= 0)


def _project(backend: Backend, progress: Progress) -> None:
    """Embedded: bring the read models up to date now, so `serve` starts ready."""
    from streams.embedded_runner import EmbeddedRunner

    if not backend.settings.embedded:
        return  # the workers project on their own
    runner = EmbeddedRunner(backend.events, backend.views, backend.projectors, batch_size=2000)  # type: ignore[arg-type]
    behind = backend.events.head_sync() - runner.position  # type: ignore[attr-defined]
    task = progress.add_task("projecting", total=max(behind, 1))
    runner.catch_up(lambda report: progress.advance(task, report.events))


