"""The home feed at scale: hybrid fan-out beside the naive fan-out on read, over graph sizes.

For each graph (heavy-tailed synthetic follower graphs of --sizes accounts, and the
Reed98 graph), in one run:

1. Seed a fresh deployment (harness.Deployment; --backend embedded: a data folder;
   distributed: a scratch topic, keyspace and bucket on the local stack) in bulk
   (api.seed.bulk_seed: the events the command handlers would append, appended
   thousands at a time): accounts, directed follows, --posts posts per account (photos
   recorded as MediaStored events without bytes: the feed never reads them); then
   project everything (embedded: the embedded runner, in this process; distributed: one
   `photostream worker`, kept running for the workload).
2. For each design, start `photostream serve` on it (PHOTOSTREAM_FEED_READ=hybrid, the
   design, or naive: the feed joins follows and posts per request and no timelines are
   kept) and:
   - first, on the quiet server, the read-store queries one feed page costs (cold and
     warm post cache), from the API's /metrics;
   - then a warm-up (10 s of feed reads at the highest level, not counted);
   then, for --seconds at each load level (--connections, default 1,2,4,8: latency
   against load; the table's headline is the last level's):
   - wrk reads GET /v1/feed?limit=20 with that many connections, rotating the
     tokens of --readers accounts (p50/p99, requests/s);
   - a second wrk (1 connection) keeps a write mix going: posts by ordinary accounts,
     likes and follows (its rate is reported; a follow of oneself answers 400, counted);
   - probes post as an ordinary author and as the biggest celebrity and poll a
     follower's feed (without a consistency token) until the post is there:
     post-to-feed freshness p50/p99.
3. Fan-out writes: every post the run created is dry-run through the projectors against
   the final read models; write amplification = rows written per post (all projectors),
   split by ordinary and celebrity authors; fan-out writes/s = home_timeline rows
   written for the run's posts / its seconds.

The celebrity threshold is scaled with the graph: it is set
(PHOTOSTREAM_CELEBRITY_THRESHOLD) to the follower count of the --celebrities-th most
followed account (default: one in a thousand accounts, at least 3), so the heavy tail's
head is pulled at every size, as the few accounts with hundreds of thousands of
followers would be at full scale with the default 10,000.

Output: a table on stdout and results/feed-scale[-distributed]-<date>.md, .json and .png.
The scratch folder (and topic, keyspace, bucket) of each graph is dropped after it
(--keep leaves them).

    python bench/feed_scale.py --sizes 2000,10000
    python bench/feed_scale.py --sizes 1000 --seconds 5 --no-reed   # smoke
    python bench/feed_scale.py --backend distributed --sizes 1000 --seconds 5 --no-reed
    python bench/feed_scale.py --sizes 100000 --no-reed --seed-only  # seeding times only
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from api.seed import Network, read_edges, seed_network  # noqa: E402
from api.settings import Settings  # noqa: E402
from api.wiring import open_backend  # noqa: E402
from bench.feed_latency import parse_wrk  # noqa: E402
from bench.harness import NO_ADDRESS_LIMITS, Deployment, add_stack_arguments, pyplot, say  # noqa: E402
from commands.context import CommandContext  # noqa: E402
from domain.events import ImageVariant, MediaRef, PostCreated, decode_event  # noqa: E402
from projections.home_timeline import HOME_TIMELINE  # noqa: E402
from streams.log_reader import LogReader  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "socfb-Reed98" / "socfb-Reed98.edges"
if not REED.exists():
    REED = Path("/work/shared/datasets/socfb-Reed98/socfb-Reed98.edges")


# ----- graphs --------------------------------------------------------------------------


def heavy_tailed(n: int, seed: int = 4) -> list[tuple[int, int]]:
    """Directed (follower, followee) edges: out-degrees log-normal (median 20, a long
    tail to 400), followees by Zipf popularity, and a few accounts followed by a large
    share of everyone (50%, 30%, 20%, ...)."""
    rng = random.Random(seed)
    cumulative, total = [], 0.0
    for rank in range(n):
        total += 1.0 / (rank + 1)
        cumulative.append(total)
    celebrities = [(c, share) for c, share in zip(range(max(3, n // 2000)), [0.5, 0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05])]
    edges: set[tuple[int, int]] = set()
    for a in range(n):
        for _ in range(min(int(rng.lognormvariate(3.0, 0.8)), 400)):
            b = bisect.bisect_left(cumulative, rng.random() * total)
            if b != a:
                edges.add((a, b))
        for c, share in celebrities:
            if c != a and rng.random() < share:
                edges.add((a, c))
    return sorted(edges)


def reed98() -> tuple[int, list[tuple[int, int]]]:
    """The Reed College friendships as follows both ways (as `photostream seed` does)."""
    nodes, pairs = read_edges(REED)
    index = {node: i for i, node in enumerate(nodes)}
    edges = [(index[a], index[b]) for a, b in pairs] + [(index[b], index[a]) for a, b in pairs]
    return len(nodes), sorted(edges)


@dataclass
class Graph:
    name: str
    accounts: int
    edges: list[tuple[int, int]]

    def followers(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for _, b in self.edges:
            counts[b] = counts.get(b, 0) + 1
        return counts


# ----- seeding -------------------------------------------------------------------------


@dataclass
class Seeded:
    deployment: Deployment
    ids: list[str]  # account ids by node
    media: list[str]  # a photo of each node (its first post's), for the write mix and the probes
    posts: list[str]
    seconds: float  # appending the events (bulk_seed)
    project_seconds: float  # projecting them (embedded runner, or the worker)
    events: int
    threshold: int

    @property
    def settings(self) -> Settings:
        return settings_of(self.deployment)


def settings_of(deployment: Deployment) -> Settings:
    """The settings `photostream serve` gets from the deployment's environment."""
    env = deployment.env
    return Settings(
        data_dir=deployment.data_dir,
        secret_key=deployment.secret,
        event_store=env.get("PHOTOSTREAM_EVENT_STORE", ""),
        read_store=env.get("PHOTOSTREAM_READ_STORE", ""),
        media_store=env.get("PHOTOSTREAM_MEDIA_STORE", ""),
        celebrity_threshold=int(env["PHOTOSTREAM_CELEBRITY_THRESHOLD"]),
        feed_read=env.get("PHOTOSTREAM_FEED_READ", "hybrid"),  # type: ignore[arg-type]
    )


async def unstored_photo(ctx: CommandContext, index: int) -> MediaRef:
    """A photo recorded without bytes: the feed never reads them."""
    media_id = ctx.new_id()
    variant = ImageVariant(f"{media_id}/small-0000000000000000.jpg", "image/jpeg", 320, 320)
    return MediaRef(media_id, "image/jpeg", 1080, 1080, {v: variant for v in ("thumb", "small", "large", "original")})


def network(graph: Graph, posts_per_account: int) -> Network:
    return Network(
        usernames=[f"user{node}" for node in range(graph.accounts)],
        display_names=[f"User {node}" for node in range(graph.accounts)],
        follows=graph.edges,
        posts=[(node, f"post {n} by user{node} #bench") for n in range(posts_per_account) for node in range(graph.accounts)],
    )


def seed(graph: Graph, deployment: Deployment, posts_per_account: int, threshold: int) -> Seeded:
    """Append the graph in bulk (api.seed.seed_network: what the command handlers would
    append), then project it: embedded in this process, distributed by a real worker."""
    settings = settings_of(deployment)
    done = seed_network(settings, network(graph, posts_per_account), "photostream", unstored_photo)
    projected = done.seconds.pop("projections")
    seconds = sum(done.seconds.values())
    say(f"  {done.events:,} events appended in {seconds:.1f}s")
    if not settings.embedded:
        started = time.perf_counter()
        deployment.start_worker()
        wait_projected(deployment, settings)
        projected = time.perf_counter() - started
    media = done.media_ids[: graph.accounts]  # the first post of each node, in node order
    return Seeded(deployment, done.account_ids, media, done.post_ids, seconds, projected, done.events, threshold)


def wait_projected(deployment: Deployment, settings: Settings, timeout: float = 3600) -> None:
    """Until no projection lags behind the log (Backend.progress: the lag
    `photostream status` reports)."""
    backend = open_backend(settings, run_projections=False)

    async def watch() -> None:
        await backend.start()
        try:
            deadline, last_note = time.monotonic() + timeout, time.monotonic()
            while True:
                behind = {p.name: p.lag_events for p in await backend.progress()}
                if not any(behind.values()):
                    return
                if deployment.procs["worker"].poll() is not None:
                    raise RuntimeError(f"the worker exited; see {deployment.data_dir / 'worker.log'}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not catch up in {timeout:.0f}s: {behind}")
                if time.monotonic() - last_note > 15:
                    slowest = max(behind, key=behind.__getitem__)
                    say(f"  ... projecting: {slowest} {behind[slowest]:,} events behind")
                    last_note = time.monotonic()
                await asyncio.sleep(0.5)
        finally:
            await backend.close()

    asyncio.run(watch())


# ----- load ----------------------------------------------------------------------------

READ_LUA = """
tokens = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/v1/feed?limit=20", {["Authorization"] = "Bearer " .. tokens[(counter %% #tokens) + 1]})
end
"""

WRITE_LUA = """
writers = {%s}
posts = {%s}
accounts = %d
counter = 0
math.randomseed(7)
request = function()
  counter = counter + 1
  local w = writers[(counter %% #writers) + 1]
  local kind = counter %% 6
  if kind == 0 or kind == 3 then
    return wrk.format("POST", "/v1/posts", {["Authorization"] = "Bearer " .. w[1], ["Content-Type"] = "application/json"},
      '{"caption":"bench post #load","media_ids":["' .. w[2] .. '"]}')
  elseif kind == 5 then
    return wrk.format("POST", "/v1/accounts/user" .. math.random(0, accounts - 1) .. "/follow", {["Authorization"] = "Bearer " .. w[1]})
  end
  return wrk.format("POST", "/v1/posts/" .. posts[math.random(#posts)] .. "/like", {["Authorization"] = "Bearer " .. w[1]})
end
"""


def wrk(url: str, script: str, seconds: int, connections: int) -> subprocess.Popen:
    handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    handle.write(script)
    handle.close()
    return subprocess.Popen(
        ["wrk", "-t1" if connections == 1 else "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", handle.name, url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(process: subprocess.Popen) -> dict[str, float]:
    out, err = process.communicate(timeout=600)
    if process.returncode:
        raise RuntimeError(f"wrk failed: {err}")
    return parse_wrk(out)


@dataclass
class Probe:
    author: int
    reader: int
    kind: str  # ordinary | celebrity
    seconds: list[float] = field(default_factory=list)
    lost: int = 0


def probe_loop(url: str, tokens: dict[int, str], seeded: Seeded, probes: list[Probe], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            for probe in probes:
                answer = http.post(
                    "/v1/posts",
                    headers={"Authorization": f"Bearer {tokens[probe.author]}"},
                    json={"caption": "probe", "media_ids": [seeded.media[probe.author]]},
                )
                answer.raise_for_status()
                post_id, posted = answer.json()["id"], time.perf_counter()
                while True:
                    feed = http.get("/v1/feed", params={"limit": 5}, headers={"Authorization": f"Bearer {tokens[probe.reader]}"})
                    if post_id in [p["id"] for p in feed.json()["items"]]:
                        probe.seconds.append(time.perf_counter() - posted)
                        break
                    if time.perf_counter() - posted > 20:
                        probe.lost += 1
                        break
                    time.sleep(0.005)
            stop.wait(0.3)


def pick_probes(graph: Graph) -> list[Probe]:
    followers = graph.followers()
    by_followee: dict[int, list[int]] = {}
    for a, b in graph.edges:
        by_followee.setdefault(b, []).append(a)
    celebrity = max(followers, key=lambda a: followers[a])
    ordinary = min((a for a in followers if 3 <= followers[a] and a != celebrity), key=lambda a: abs(followers[a] - 20))
    return [
        Probe(ordinary, by_followee[ordinary][0], "ordinary"),
        Probe(celebrity, by_followee[celebrity][0], "celebrity"),
    ]


def post_writes(seeded: Seeded, after: dict[int, int], followers: dict[int, int], index: dict[str, int]) -> dict[str, Any]:
    """Dry-run the posts logged after `after` through the hybrid projectors."""
    settings = seeded.settings.model_copy(update={"feed_read": "hybrid"})
    backend = open_backend(settings, run_projections=False)
    try:
        # rows written per post: (every projector, without home_timeline = the naive design)
        amplification: dict[str, list[tuple[int, int]]] = {"ordinary": [], "celebrity": []}
        fanout = 0
        with LogReader.open(settings.event_store) as reader:
            records = list(reader.raw(after=after))
        for record in records:
            event = decode_event(record.body)
            if not isinstance(event.data, PostCreated):
                continue
            # The same post as if it were new (an unused id next to it), so projectors that
            # skip a post they already hold count what the post cost them.
            event = dataclasses.replace(event, data=dataclasses.replace(event.data, post_id=str(int(event.data.post_id) + 1)))
            per = {p.name: len(p.project(event, backend.views)) for p in backend.projectors if p.handles(event)}
            timeline = next(p for p in backend.projectors if p.name == "home_timeline").project(event, backend.views)
            fanout += sum(1 for w in timeline if getattr(w, "table", None) == HOME_TIMELINE)
            node = index[event.data.author_id]
            kind = "celebrity" if followers.get(node, 0) >= seeded.threshold else "ordinary"
            amplification[kind].append((sum(per.values()), sum(v for k, v in per.items() if k != "home_timeline")))
        return {"fanout_rows": fanout, "amplification": amplification}
    finally:
        asyncio.run(backend.events.close())
        backend.views.close()


WARM_UP_SECONDS = 10


def run_design(graph: Graph, seeded: Seeded, design: str, args: argparse.Namespace) -> dict[str, Any]:
    """One `photostream serve` with the design; the workload at each --connections level
    in turn (--seconds each). The headline figures are the highest level's; `levels`
    holds every level's (latency against load)."""
    rng = random.Random(1)
    readers = rng.sample(range(graph.accounts), min(args.readers, graph.accounts))
    followers = graph.followers()
    writers = [a for a in rng.sample(range(graph.accounts), min(50, graph.accounts)) if followers.get(a, 0) < seeded.threshold]
    probes = pick_probes(graph)
    nodes = sorted(set(readers) | set(writers) | {p.author for p in probes} | {p.reader for p in probes})
    tokens = dict(zip(nodes, seeded.deployment.tokens_for([seeded.ids[n] for n in nodes])))
    deployment = seeded.deployment
    deployment.env["PHOTOSTREAM_FEED_READ"] = design
    deployment.start_serve()
    url = deployment.url
    read_script = READ_LUA % ",".join(f'"{tokens[r]}"' for r in readers)
    write_script = WRITE_LUA % (
        ",".join(f'{{"{tokens[w]}","{seeded.media[w]}"}}' for w in writers),
        ",".join(f'"{p}"' for p in seeded.posts[:2000]),
        graph.accounts,
    )
    levels: list[dict[str, Any]] = []
    try:
        queries = queries_per_page(url, [tokens[r] for r in readers[:9]])
        # Not counted: the readers' first pages (cold post cache) and, distributed, the
        # store settling after the seed would otherwise land on the first level.
        finish(wrk(url, read_script, WARM_UP_SECONDS, max(args.connections)))
        head_before = _head(seeded)
        for connections in args.connections:
            level_probes = [Probe(p.author, p.reader, p.kind) for p in probes]
            read = wrk(url, read_script, args.seconds, connections)
            write = wrk(url, write_script, args.seconds, 1)
            halt = threading.Event()
            prober = threading.Thread(target=probe_loop, args=(url, tokens, seeded, level_probes, halt), daemon=True)
            prober.start()
            reads, writes = finish(read), finish(write)
            halt.set()
            prober.join(timeout=60)
            level: dict[str, Any] = {
                "connections": connections,
                "feed_p50_ms": reads["p50_ms"],
                "feed_p99_ms": reads["p99_ms"],
                "feed_rps": reads["rps"],
                "feed_non_2xx": reads["non_2xx"],
                "writes_rps": writes["rps"],
                "write_non_2xx": writes["non_2xx"],
            }
            for probe in level_probes:
                ms = sorted(s * 1000 for s in probe.seconds)
                level[f"fresh_{probe.kind}_p50_ms"] = _pct(ms, 50)
                level[f"fresh_{probe.kind}_p99_ms"] = _pct(ms, 99)
                level[f"fresh_{probe.kind}_n"] = len(ms)
                level[f"fresh_{probe.kind}_lost"] = probe.lost
                level[f"fresh_{probe.kind}_followers"] = followers.get(probe.author, 0)
            say(f"  {design}, {connections} connection(s): {level['feed_rps']:.0f} req/s, p50 {level['feed_p50_ms']:.1f} ms, "
                f"p99 {level['feed_p99_ms']:.1f} ms; freshness p99 {level['fresh_ordinary_p99_ms'] or 0:.0f} ms")  # fmt: skip
            levels.append(level)
    finally:
        deployment.stop("serve")
    index = {account: node for node, account in enumerate(seeded.ids)}
    dry = post_writes(seeded, head_before, followers, index)
    column = 0 if design == "hybrid" else 1  # the baseline keeps no timelines: nothing is fanned out
    if design == "naive":
        dry["fanout_rows"] = 0
    result: dict[str, Any] = {
        **levels[-1],
        "levels": levels,
        "fanout_writes_per_s": dry["fanout_rows"] / (args.seconds * len(levels)),
        **queries,
    }
    for kind in ("ordinary", "celebrity"):
        sample = [pair[column] for pair in dry["amplification"][kind]]
        result[f"amplification_{kind}"] = statistics.mean(sample) if sample else None
    return result


def queries_per_page(url: str, tokens: list[str]) -> dict[str, float]:
    """Read-store queries one GET /v1/feed?limit=20 costs the API process, from its
    /metrics (photostream_read_store_queries_total), read by read on a quiet server:
    the first read of a reader (cold: the post cache holds none of the page) and the
    same page again at once (warm: contents, stats and authors cached). Medians."""

    def total() -> float:
        text = httpx.get(f"{url}/metrics", timeout=30).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("photostream_read_store_queries_total{"))

    cold, warm = [], []
    for token in tokens:
        for sample in (cold, warm):
            before = total()
            response = httpx.get(f"{url}/v1/feed?limit=20", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            response.raise_for_status()
            sample.append(total() - before)
    return {"queries_cold": statistics.median(cold), "queries_warm": statistics.median(warm)}


def _head(seeded: Seeded) -> dict[int, int]:
    with LogReader.open(seeded.settings.event_store) as reader:
        return reader.head()


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# ----- report --------------------------------------------------------------------------


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    for design, style in (("hybrid", "o-"), ("naive", "s--")):
        mine = sorted((r for r in rows if r["design"] == design), key=lambda r: r["accounts"])
        xs = [r["accounts"] for r in mine]
        axes[0].plot(xs, [r["feed_p50_ms"] for r in mine], style, label=f"{design} p50")
        axes[0].plot(xs, [r["feed_p99_ms"] for r in mine], style, alpha=0.5, label=f"{design} p99")
        axes[1].plot(xs, [r["feed_rps"] for r in mine], style, label=design)
        axes[2].plot(xs, [r["fresh_ordinary_p99_ms"] or 0 for r in mine], style, label=f"{design} ordinary p99")
        axes[2].plot(xs, [r["fresh_celebrity_p99_ms"] or 0 for r in mine], style, alpha=0.5, label=f"{design} celebrity p99")
    for ax, title, unit in zip(axes, ("GET /v1/feed latency", "GET /v1/feed throughput", "post-to-feed freshness"), ("ms", "req/s", "ms")):
        ax.set_title(title)
        ax.set_xlabel("accounts (log)")
        ax.set_xscale("log")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    load = axes[3]
    for r in rows:
        levels = r.get("levels") or []
        load.plot([lv["feed_rps"] for lv in levels], [lv["feed_p99_ms"] for lv in levels], "o-" if r["design"] == "hybrid" else "s--",
                  label=f"{r['graph']}, {r['design']}")  # fmt: skip
        for lv in levels:
            load.annotate(str(lv["connections"]), (lv["feed_rps"], lv["feed_p99_ms"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    load.axhline(50, color="grey", linestyle=":", label="p99 target 50 ms")
    load.set_title("feed p99 against load (labels: connections)")
    load.set_xlabel("feed req/s")
    load.set_ylabel("p99 ms")
    load.grid(alpha=0.3)
    load.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def num(value: Any, digits: int = 1) -> str:
    """A table cell: thousands separated, "-" for a figure the run could not take."""
    return "-" if value is None else f"{value:,.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    f = num
    lines = [
        "| graph | accounts | follows | design | feed p50 ms | feed p99 ms | feed req/s | store queries/page cold/warm | writes req/s | fresh ordinary p50/p99 ms | fresh celebrity p50/p99 ms | fan-out writes/s | rows/post ordinary | rows/post celebrity |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['graph']} | {r['accounts']:,} | {r['follows']:,} | {r['design']} | {f(r['feed_p50_ms'], 2)} | {f(r['feed_p99_ms'], 2)} | "
            f"{f(r['feed_rps'], 0)} | {f(r.get('queries_cold'), 0)}/{f(r.get('queries_warm'), 0)} | {f(r['writes_rps'], 0)} | {f(r['fresh_ordinary_p50_ms'], 0)}/{f(r['fresh_ordinary_p99_ms'], 0)} | "
            f"{f(r['fresh_celebrity_p50_ms'], 0)}/{f(r['fresh_celebrity_p99_ms'], 0)} | {f(r['fanout_writes_per_s'], 0)} | "
            f"{f(r['amplification_ordinary'])} | {f(r['amplification_celebrity'])} |"
        )
    return "\n".join(lines)


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give connection counts as whole numbers, e.g. 1,2,4,8") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: each level needs at least 1 connection")
    return levels


def load_table(rows: list[dict[str, Any]]) -> str:
    """Latency against load: every level of every run."""
    lines = [
        "| graph | design | connections | feed req/s | feed p50 ms | feed p99 ms | writes req/s | fresh ordinary p50/p99 ms | fresh celebrity p50/p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for lv in r.get("levels") or []:
            lines.append(
                f"| {r['graph']} | {r['design']} | {lv['connections']} | {num(lv['feed_rps'], 0)} | {num(lv['feed_p50_ms'], 1)} | {num(lv['feed_p99_ms'], 1)} | "
                f"{num(lv['writes_rps'], 0)} | {num(lv['fresh_ordinary_p50_ms'], 0)}/{num(lv['fresh_ordinary_p99_ms'], 0)} | "
                f"{num(lv['fresh_celebrity_p50_ms'], 0)}/{num(lv['fresh_celebrity_p99_ms'], 0)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["embedded", "distributed"], default="embedded",
                        help="embedded: SQLite in a data folder; distributed: a scratch topic, keyspace and bucket on the local stack, one worker")  # fmt: skip
    parser.add_argument("--sizes", default="2000,10000", help="accounts of each synthetic graph, comma separated")
    parser.add_argument("--no-reed", action="store_true", help="leave out the Reed98 graph")
    parser.add_argument("--posts", type=int, default=2, help="seeded posts per account (at least 1)")
    parser.add_argument("--celebrities", type=int, default=None, help="accounts pulled (default max(3, accounts / 1000))")
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=_levels, default=[1, 2, 4, 8],
                        help="feed-reading wrk connections, one load level each, comma separated (default 1,2,4,8); "
                        "the table's figures are the last level's, the report adds latency against load")  # fmt: skip
    parser.add_argument("--worker-threads", type=int, default=8, help="distributed: threads of the worker")
    parser.add_argument("--seed-only", action="store_true", help="seed and project each graph, print the times, run no workload")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the report goes (default bench/results)")
    add_stack_arguments(parser.add_argument_group("scratch deployment (harness.Deployment)"), "feedscale")
    args = parser.parse_args()
    if args.posts < 1:
        parser.error("--posts must be at least 1 (the probes and the write mix post with a seeded photo)")
    if shutil.which("wrk") is None and not args.seed_only:
        sys.exit("wrk is not installed: apt-get install wrk")
    load = os.getloadavg()[0]
    graphs = [Graph(f"heavy-tailed {n:,}", n, heavy_tailed(n)) for n in (int(s) for s in args.sizes.split(","))]
    if not args.no_reed:
        accounts, edges = reed98()
        graphs.insert(0, Graph("Reed98", accounts, edges))
    rows: list[dict[str, Any]] = []
    base = args.name
    try:
        for number, graph in enumerate(graphs):
            counts = sorted(graph.followers().values(), reverse=True)
            threshold = counts[min(len(counts), args.celebrities or max(3, graph.accounts // 1000)) - 1]
            args.name = f"{base}-{number}"
            # The write mix posts as 50 accounts at a few posts a minute each: over the
            # per-account limits, which would turn a share of its posts into 429s.
            limits = {"PHOTOSTREAM_RATE_LIMIT_SCALE": "1000", "PHOTOSTREAM_RATE_LIMITS": NO_ADDRESS_LIMITS}
            deployment = Deployment(args, extra_env={"PHOTOSTREAM_CELEBRITY_THRESHOLD": str(threshold), **limits})
            try:
                deployment.prepare()
                say(f"seeding {graph.name}: {graph.accounts:,} accounts, {len(graph.edges):,} follows, threshold {threshold} ({args.backend}) ...")
                seeded = seed(graph, deployment, args.posts, threshold)
                say(f"  projected in {seeded.project_seconds:.1f}s"
                    + (" (one worker, from its start)" if args.backend == "distributed" else ""))
                if args.seed_only:
                    continue
                for design in ("hybrid", "naive"):
                    result = run_design(graph, seeded, design, args)
                    rows.append({"graph": graph.name, "accounts": graph.accounts, "follows": len(graph.edges), "design": design,
                                 "seed_seconds": seeded.seconds, "project_seconds": seeded.project_seconds, **result})  # fmt: skip
                    print(f"  {design}: {json.dumps(result)}", flush=True)
            finally:
                deployment.cleanup()
    finally:
        if rows:
            report(rows, args, load)


BACKENDS = {
    "embedded": "embedded backend (API, projections and SQLite in one `photostream serve`)",
    "distributed": "distributed backend (one `photostream serve`, one `photostream worker` running every projector in both "
    "designs, Kafka, Cassandra and MinIO of the local stack)",
}


def report(rows: list[dict[str, Any]], args: argparse.Namespace, load: float) -> None:
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"feed-scale-{'' if args.backend == 'embedded' else 'distributed-'}{date.today().isoformat()}"
    text = table(rows)
    print("\n" + text + "\n\n" + load_table(rows))
    drawn = plot(rows, stem.with_suffix(".png"))
    command = "python bench/feed_scale.py " + " ".join(sys.argv[1:])
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "load_at_start": load, "rows": rows}, indent=2))
    stem.with_suffix(".md").write_text(
        f"# The home feed at scale: hybrid fan-out beside fan-out on read\n\n"
        f"Command: `{command}`  \nLoad average at start: {load:.1f} on {os.cpu_count()} cores; {BACKENDS[args.backend]}.\n\n"
        f"{text}\n\nLatency against load (each level {args.seconds} s, the write mix and the freshness probes running):\n\n"
        f"{load_table(rows)}\n\nSeeding (api.seed.bulk_seed, then projected): "
        + "; ".join(f"{r['graph']} appended in {r['seed_seconds']:.0f} s, projected in {r['project_seconds']:.0f} s" for r in rows if r["design"] == "hybrid")
        + ".\n" + (f"\n![plots]({stem.with_suffix('.png').name})\n" if drawn else "")
    )


if __name__ == "__main__":
    main()
