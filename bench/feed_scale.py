"""The home feed at scale: hybrid fan-out beside the naive fan-out on read, over graph sizes.

For each graph (heavy-tailed synthetic follower graphs of --sizes accounts, and the
Reed98 graph), in one run:

1. Seed a fresh embedded data folder through the command handlers: directed follows,
   --posts posts per account (photos recorded as MediaStored events without bytes: the
   feed never reads them), then project everything.
2. For each design, start `photostream serve` on it (PHOTOSTREAM_FEED_READ=hybrid, the
   design, or naive: the feed joins follows and posts per request and no timelines are
   kept) and, for --seconds:
   - wrk reads GET /v1/feed?limit=20 with --connections connections, rotating the
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

Output: a table on stdout and results/feed-scale-<date>.md, .json and .png.

    python bench/feed_scale.py --sizes 2000,10000      # about 10 min per 10k accounts on 2 cores
    python bench/feed_scale.py --sizes 1000 --seconds 5 --no-reed   # smoke
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
import signal
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

from api.auth import TokenSigner, load_or_create_secret  # noqa: E402
from api.seed import PrecomputedHasher, read_edges  # noqa: E402
from api.settings import Settings  # noqa: E402
from api.wiring import open_backend  # noqa: E402
from bench.feed_latency import free_port, parse_wrk  # noqa: E402
from commands.accounts import register_account  # noqa: E402
from commands.context import Actor  # noqa: E402
from commands.posts import create_post  # noqa: E402
from commands.social import follow  # noqa: E402
from domain.aggregates import media_stream  # noqa: E402
from domain.events import ImageVariant, MediaRef, MediaStored, PostCreated, decode_event  # noqa: E402
from projections.home_timeline import HOME_TIMELINE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "socfb-Reed98" / "socfb-Reed98.edges"
if not REED.exists():
    REED = Path("/work/shared/datasets/socfb-Reed98/socfb-Reed98.edges")
SECRET = "bench-feed-scale-secret"


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
    folder: Path
    ids: list[str]  # account ids by node
    media: list[str]  # one photo per node, for the write mix and the probes
    posts: list[str]
    seconds: float
    threshold: int


def settings_for(folder: Path, threshold: int, feed_read: str = "hybrid") -> Settings:
    return Settings(data_dir=folder, secret_key=SECRET, celebrity_threshold=threshold, feed_read=feed_read)  # type: ignore[arg-type]


def seed(graph: Graph, folder: Path, posts_per_account: int, threshold: int) -> Seeded:
    started = time.perf_counter()
    backend = open_backend(settings_for(folder, threshold), hasher=PrecomputedHasher("photostream"), run_projections=False, bulk=True)
    ctx = backend.commands
    ids: list[str] = []
    media: list[str] = []
    posts: list[str] = []

    async def run() -> None:
        await backend.start()
        limit = asyncio.Semaphore(16)

        async def bounded(coro: Any) -> Any:
            async with limit:
                return await coro

        for node in range(graph.accounts):
            ids.append((await register_account(ctx, f"user{node}", "photostream", f"User {node}")).value)
        for node in range(graph.accounts):
            media_id = ctx.new_id()
            variant = ImageVariant(f"{media_id}/small-0000000000000000.jpg", "image/jpeg", 320, 320)
            ref = MediaRef(media_id, "image/jpeg", 1080, 1080, {v: variant for v in ("thumb", "small", "large", "original")})
            await ctx.append(media_stream(media_id), [MediaStored(media_id, ids[node], ref)], Actor(ids[node]))
            media.append(media_id)
        await asyncio.gather(*(bounded(follow(ctx, Actor(ids[a]), ids[b])) for a, b in graph.edges))
        for n in range(posts_per_account):
            for node in range(graph.accounts):
                done = await create_post(ctx, Actor(ids[node]), f"post {n} by user{node} #bench", [media[node]])
                posts.append(done.value.post_id)
        backend.events.flush()  # type: ignore[attr-defined]
        await backend.events.close()

    asyncio.run(run())
    from streams.embedded_runner import EmbeddedRunner

    EmbeddedRunner(backend.events, backend.views, backend.projectors, batch_size=2000).catch_up()  # type: ignore[arg-type]
    backend.views.close()
    return Seeded(folder, ids, media, posts, time.perf_counter() - started, threshold)


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


def serve(seeded: Seeded, feed_read: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PHOTOSTREAM_DATA_DIR": str(seeded.folder),
        "PHOTOSTREAM_SECRET_KEY": SECRET,
        "PHOTOSTREAM_CELEBRITY_THRESHOLD": str(seeded.threshold),
        "PHOTOSTREAM_FEED_READ": feed_read,
    }
    exe = Path(sys.executable).parent / "photostream"
    server = subprocess.Popen([str(exe), "serve", "--port", str(port), "--log-level", "warning"], env=env)
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not become ready")


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def post_writes(seeded: Seeded, after: int, followers: dict[int, int], index: dict[str, int]) -> dict[str, Any]:
    """Dry-run the posts logged after `after` through the hybrid projectors."""
    backend = open_backend(settings_for(seeded.folder, seeded.threshold), run_projections=False)
    try:
        # rows written per post: (every projector, without home_timeline = the naive design)
        amplification: dict[str, list[tuple[int, int]]] = {"ordinary": [], "celebrity": []}
        fanout = 0
        for _, _, body in backend.events.iter_raw(after):  # type: ignore[attr-defined]
            event = decode_event(body)
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


def run_design(graph: Graph, seeded: Seeded, design: str, args: argparse.Namespace) -> dict[str, Any]:
    signer = TokenSigner(load_or_create_secret(seeded.folder, SECRET), 86400)
    rng = random.Random(1)
    readers = rng.sample(range(graph.accounts), min(args.readers, graph.accounts))
    followers = graph.followers()
    writers = [a for a in rng.sample(range(graph.accounts), min(50, graph.accounts)) if followers.get(a, 0) < seeded.threshold]
    probes = pick_probes(graph)
    tokens = {n: signer.issue(seeded.ids[n]) for n in set(readers) | set(writers) | {p.author for p in probes} | {p.reader for p in probes}}
    server, url = serve(seeded, design)
    try:
        head_before = _head(seeded)
        read = wrk(url, READ_LUA % ",".join(f'"{tokens[r]}"' for r in readers), args.seconds, args.connections)
        write = wrk(
            url,
            WRITE_LUA % (
                ",".join(f'{{"{tokens[w]}","{seeded.media[w]}"}}' for w in writers),
                ",".join(f'"{p}"' for p in seeded.posts[:2000]),
                graph.accounts,
            ),
            args.seconds,
            1,
        )
        halt = threading.Event()
        prober = threading.Thread(target=probe_loop, args=(url, tokens, seeded, probes, halt), daemon=True)
        prober.start()
        reads, writes = finish(read), finish(write)
        halt.set()
        prober.join(timeout=60)
    finally:
        stop(server)
    index = {account: node for node, account in enumerate(seeded.ids)}
    dry = post_writes(seeded, head_before, followers, index)
    column = 0 if design == "hybrid" else 1  # the baseline keeps no timelines: nothing is fanned out
    if design == "naive":
        dry["fanout_rows"] = 0
    result: dict[str, Any] = {
        "feed_p50_ms": reads["p50_ms"],
        "feed_p99_ms": reads["p99_ms"],
        "feed_rps": reads["rps"],
        "feed_non_2xx": reads["non_2xx"],
        "writes_rps": writes["rps"],
        "write_non_2xx": writes["non_2xx"],
        "fanout_writes_per_s": dry["fanout_rows"] / args.seconds,
    }
    for kind in ("ordinary", "celebrity"):
        sample = [pair[column] for pair in dry["amplification"][kind]]
        result[f"amplification_{kind}"] = statistics.mean(sample) if sample else None
    for probe in probes:
        ms = sorted(s * 1000 for s in probe.seconds)
        result[f"fresh_{probe.kind}_p50_ms"] = _pct(ms, 50)
        result[f"fresh_{probe.kind}_p99_ms"] = _pct(ms, 99)
        result[f"fresh_{probe.kind}_n"] = len(ms)
        result[f"fresh_{probe.kind}_lost"] = probe.lost
        result[f"fresh_{probe.kind}_followers"] = followers.get(probe.author, 0)
    return result


def _head(seeded: Seeded) -> int:
    from streams.sqlite_event_store import SqliteEventStore

    store = SqliteEventStore(seeded.folder / "events.db")
    try:
        return store.head_sync()
    finally:
        asyncio.run(store.close())


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# ----- report --------------------------------------------------------------------------


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(rows: list[dict[str, Any]]) -> str:
    def f(value: Any, digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [
        "| graph | accounts | follows | design | feed p50 ms | feed p99 ms | feed req/s | writes req/s | fresh ordinary p50/p99 ms | fresh celebrity p50/p99 ms | fan-out writes/s | rows/post ordinary | rows/post celebrity |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['graph']} | {r['accounts']:,} | {r['follows']:,} | {r['design']} | {f(r['feed_p50_ms'], 2)} | {f(r['feed_p99_ms'], 2)} | "
            f"{f(r['feed_rps'], 0)} | {f(r['writes_rps'], 0)} | {f(r['fresh_ordinary_p50_ms'], 0)}/{f(r['fresh_ordinary_p99_ms'], 0)} | "
            f"{f(r['fresh_celebrity_p50_ms'], 0)}/{f(r['fresh_celebrity_p99_ms'], 0)} | {f(r['fanout_writes_per_s'], 0)} | "
            f"{f(r['amplification_ordinary'])} | {f(r['amplification_celebrity'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000", help="accounts of each synthetic graph, comma separated")
    parser.add_argument("--no-reed", action="store_true", help="leave out the Reed98 graph")
    parser.add_argument("--posts", type=int, default=2, help="seeded posts per account")
    parser.add_argument("--celebrities", type=int, default=None, help="accounts pulled (default max(3, accounts / 1000))")
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-feed-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the seeded folders")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    load = os.getloadavg()[0]
    graphs = [Graph(f"heavy-tailed {n:,}", n, heavy_tailed(n)) for n in (int(s) for s in args.sizes.split(","))]
    if not args.no_reed:
        accounts, edges = reed98()
        graphs.insert(0, Graph("Reed98", accounts, edges))
    rows: list[dict[str, Any]] = []
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        for graph in graphs:
            folder = args.workdir / graph.name.replace(" ", "-").replace(",", "")
            shutil.rmtree(folder, ignore_errors=True)
            counts = sorted(graph.followers().values(), reverse=True)
            threshold = counts[min(len(counts), args.celebrities or max(3, graph.accounts // 1000)) - 1]
            print(f"seeding {graph.name}: {graph.accounts:,} accounts, {len(graph.edges):,} follows, threshold {threshold} ...", flush=True)
            seeded = seed(graph, folder, args.posts, threshold)
            print(f"  seeded in {seeded.seconds:.0f}s", flush=True)
            for design in ("hybrid", "naive"):
                result = run_design(graph, seeded, design, args)
                rows.append({"graph": graph.name, "accounts": graph.accounts, "follows": len(graph.edges), "design": design, **result})
                print(f"  {design}: {json.dumps(result)}", flush=True)
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if rows:
            report(rows, args, load)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, load: float) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"feed-scale-{date.today().isoformat()}"
    text = table(rows)
    print("\n" + text)
    plot(rows, stem.with_suffix(".png"))
    command = "python bench/feed_scale.py " + " ".join(sys.argv[1:])
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "load_at_start": load, "rows": rows}, indent=2))
    stem.with_suffix(".md").write_text(
        f"# The home feed at scale: hybrid fan-out beside fan-out on read\n\n"
        f"Command: `{command}`  \nLoad average at start: {load:.1f} on {os.cpu_count()} cores; embedded backend "
        f"(API, projections and SQLite in one `photostream serve`).\n\n{text}\n\n![plots]({stem.with_suffix('.png').name})\n"
    )


if __name__ == "__main__":
    main()
