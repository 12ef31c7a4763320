"""`photostream seed`: a realistic network from an edge list, appended in bulk as the
command handlers would append it (bulk_seed, also used by bench/feed_scale.py)."""
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

from commands.accounts import USERNAMES, registration
from commands.context import Actor, Argon2Hasher, CommandContext
from commands.media import media_stored, put_photo
from commands.posts import post_creation, resolve_mentions
from commands.social import follow, following
from domain import rules
from domain.events import MediaRef
from streams.event_store import Append, gather_bounded

from api.settings import Settings
from api.wiring import Backend, open_backend

CONCURRENCY = 8  # photos generated, or follows of existing accounts, at once
LOOKUPS_IN_FLIGHT = 64  # usernames looked up at once
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


@dataclass(frozen=True)
class Network:
    """What a bulk seed creates: accounts (by index), directed follows between them, and
    posts of one photo each, in this order. The same network seeds the same accounts,
    follows and posts in the same order (ids and times are new each time)."""

    usernames: list[str]
    display_names: list[str]
    follows: list[tuple[int, int]]  # (follower, followee) indices into usernames
    posts: list[tuple[int, str]]  # (author index, caption)


# A post's photo, stored: (context, index of the post in Network.posts) -> its MediaRef.
Photo = Callable[[CommandContext, int], Awaitable[MediaRef]]


@dataclass
class Seeded:
    account_ids: list[str]  # by index of Network.usernames
    post_ids: list[str]  # by index of Network.posts
    media_ids: list[str]  # the photo of each post
    events: int  # appended by this seed
    seconds: dict[str, float]


async def bulk_seed(
    backend: Backend, network: Network, password: str, photo: Photo, progress: Progress, *, chunk: int = 5000
) -> Seeded:
    """Seed a network through the same appends the command handlers make
    (register_account, follow, store_media and create_post: commands' `registration`,
    `following`, `media_stored`, `post_creation`), handed to the event store `chunk` at
    a time (`EventStore.append_many`) instead of one command at a time.

    Accounts whose username is taken are reused (seeding again is harmless): their
    follows go through the `follow` command itself, which knows their follow streams.
    Every other follow is new (its accounts are), so it is appended in bulk. Every check
    a command makes on its input is made here too (rules), once per input."""
    ctx = backend.commands
    timings: dict[str, float] = {}
    before = _appended(await backend.events.head())
    pending: list[Append] = []

    async def add(append: Append) -> None:
        pending.append(append)
        if len(pending) >= chunk:
            await flush()

    async def flush() -> None:
        if pending:
            await ctx.events.append_many(list(pending))  # type: ignore[attr-defined]
            pending.clear()

    # accounts
    started = time.perf_counter()
    rules.check_password(password)
    password_hash = await asyncio.to_thread(ctx.hasher.hash, password)
    names = [rules.normalize_username(u) for u in network.usernames]
    existing = await gather_bounded([lambda n=n: ctx.events.lookup_unique(USERNAMES, n) for n in names], LOOKUPS_IN_FLIGHT)
    task = progress.add_task("accounts", total=len(names))
    ids: list[str] = []
    for name, shown, found in zip(names, network.display_names, existing):
        if found is not None:
            ids.append(found)
        else:
            account_id, append = registration(ctx, name, rules.check_display_name(shown) or name, password_hash)
            ids.append(account_id)
            await add(append)
        progress.advance(task)
    await flush()
    timings["accounts"] = time.perf_counter() - started

    # follows
    started = time.perf_counter()
    old = {i for i, found in enumerate(existing) if found is not None}
    task = progress.add_task("follows", total=len(network.follows))
    by_command: list[tuple[int, int]] = []
    for a, b in dict.fromkeys(network.follows):  # a repeated follow changes nothing
        rules.check_can_follow(ids[a], ids[b])
        if a in old or b in old:
            by_command.append((a, b))
            continue
        await add(following(ctx, Actor(ids[a]), ids[b]))
        progress.advance(task)
    await flush()

    async def follow_one(pair: tuple[int, int]) -> None:
        await follow(ctx, Actor(ids[pair[0]]), ids[pair[1]])
        progress.advance(task)

    await gather_bounded([lambda p=p: follow_one(p) for p in by_command], CONCURRENCY)
    progress.update(task, completed=len(network.follows))
    timings["follows"] = time.perf_counter() - started

    # posts
    started = time.perf_counter()
    task = progress.add_task("posts", total=len(network.posts))
    post_ids: list[str] = []
    media_ids: list[str] = []
    for first in range(0, len(network.posts), chunk):
        part = range(first, min(first + chunk, len(network.posts)))
        refs = await gather_bounded([lambda i=i: photo(ctx, i) for i in part], CONCURRENCY)
        for i, ref in zip(part, refs):
            author, text = network.posts[i]
            actor = Actor(ids[author])
            caption, tags, mentions = rules.check_caption(text)
            await add(media_stored(ctx, actor, ref))
            event, append = post_creation(ctx, actor, caption, tags, [ref], await resolve_mentions(ctx, mentions))
            await add(append)
            post_ids.append(event.post_id)
            media_ids.append(ref.media_id)
            progress.advance(task)
    await flush()
    timings["posts"] = time.perf_counter() - started
    flush_log = getattr(backend.events, "flush", None)
    if flush_log is not None:  # the embedded log was written without per-commit fsync
        flush_log()
    events = _appended(await backend.events.head()) - before
    return Seeded(ids, post_ids, media_ids, events, timings)


def generated_photo_of(photo_seed: Callable[[int], int]) -> Photo:
    """Photos generated from a seed per post (generated_photo), through store_media's
    image pipeline and into the media store."""

    async def make(ctx: CommandContext, index: int) -> MediaRef:
        data = await asyncio.to_thread(generated_photo, photo_seed(index))
        return await put_photo(ctx, data)

    return make


def graph_network(nodes: list[int], edges: list[tuple[int, int]], posts_per_account: int) -> tuple[Network, list[tuple[int, int]]]:
    """`photostream seed`'s network of an undirected graph: user<node> for each node,
    follows both ways along each edge, posts_per_account posts of each account with a
    caption and photo seeded by (node, n); also the (node, n) of each post."""
    index = {node: i for i, node in enumerate(nodes)}
    jobs = [(node, n) for n in range(posts_per_account) for node in nodes]
    posts = []
    for node, n in jobs:
        rng = random.Random(node * 1000 + n)
        posts.append((index[node], f"{rng.choice(WORDS)} #{rng.choice(TAGS)} #{rng.choice(TAGS)}"))
    return Network(
        usernames=[f"user{node}" for node in nodes],
        display_names=[f"User {node}" for node in nodes],
        follows=[pair for a, b in edges for pair in ((index[a], index[b]), (index[b], index[a]))],
        posts=posts,
    ), jobs


def run_seed(settings: Settings, graph: Path, *, posts_per_account: int = 3, max_accounts: int | None = None, password: str = "photostream") -> SeedReport:
    nodes, edges = read_edges(graph, max_accounts)
    network, jobs = graph_network(nodes, edges, posts_per_account)
    photo = generated_photo_of(lambda i: jobs[i][0] * 1000 + jobs[i][1])
    seeded = seed_network(settings, network, password, photo)
    return SeedReport(len(nodes), 2 * len(edges), posts_per_account * len(nodes), seeded.events, seeded.seconds)


def seed_network(settings: Settings, network: Network, password: str, photo: Photo, *, chunk: int = 5000) -> Seeded:
    """Open the configured stores for a bulk load, seed `network` (bulk_seed) under a
    progress bar and, embedded, project it before returning (distributed: the workers
    project). Seeded.seconds holds each step's time, "projections" included."""
    backend = open_backend(settings, hasher=PrecomputedHasher(password), run_projections=False, bulk=True)

    async def seed_all(progress: Progress) -> Seeded:
        await backend.start()
        try:
            return await bulk_seed(backend, network, password, photo, progress, chunk=chunk)
        finally:
            await backend.events.close()

    with seed_progress() as progress:
        seeded = asyncio.run(seed_all(progress))
        started = time.perf_counter()
        project(backend, progress)
        seeded.seconds["projections"] = time.perf_counter() - started
    backend.views.close()
    return seeded


def seed_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _appended(head: dict[int, int]) -> int:
    """Events in the log: embedded positions start at 1, Kafka offsets at 0."""
    return sum(position + 1 for position in head.values() if position >= 0)


def project(backend: Backend, progress: Progress, batch_size: int = 5000) -> None:
    """Embedded: bring the read models up to date now, so `serve` starts ready."""
    from streams.embedded_runner import EmbeddedRunner

    if not backend.settings.embedded:
        return  # the workers project on their own
    runner = EmbeddedRunner(backend.events, backend.views, backend.projectors, batch_size=batch_size)  # type: ignore[arg-type]
    behind = backend.events.head_sync() - runner.position  # type: ignore[attr-defined]
    task = progress.add_task("projecting", total=max(behind, 1))
    runner.catch_up(lambda report: progress.advance(task, report.events))


