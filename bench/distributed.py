"""The distributed pipeline, each figure beside its limit measured in the same run.

Starts everything it needs on the local stack (Kafka, Cassandra and MinIO must be
running: `photostream stack up`), on a fresh topic, keyspace, bucket and data folder that
it drops again at the end:

 0. seeds the Reed98 graph (`photostream seed`: bulk appends of the commands' events) with the
    worker stopped, then starts one `photostream worker` and times how long it takes to
    project that backlog;
 1. APPEND: with the worker stopped, wrk drives a mix of commands (like, comment,
    follow, unlike, unfollow) through `photostream serve` with every seeded user's
    token; events appended per second = growth of the topic's end offsets / wrk's time.
    LIMIT: Kafka's own ProducerPerformance (acks=all, idempotence, records the size of
    our events) on a scratch topic with the same partition count;
 2. PROJECT: the events step 1 appended are the backlog; one `photostream worker` is
    started and timed until every projection's checkpoints (`projection_checkpoints`,
    `<projection>#<lane>`) reach the topic's end offsets. LIMIT: the very writes the
    projectors produce for that backlog (recomputed by replaying the log through the
    same projectors into a SQLite shadow), sent as single statements with cassandra-
    driver's execute_concurrent at concurrency 100 into a scratch keyspace. Also shown:
    the same writes grouped the way the Cassandra adapter groups them (a LOGGED batch
    per event and projector) and the projectors' reads replayed raw;
 3. FRESHNESS: while wrk keeps a steady, rate-limited background load, probes POST
    /v1/posts and poll a follower's GET /v1/feed every few ms (no consistency token)
    until the post shows up. BASELINE: the POST /v1/posts latency itself.

Steps 1 and 2 run --runs times (medians are reported). Results go to stdout and to
bench/results/distributed-<date>.md and .png (the plot needs matplotlib:
`/tmp/ps-venv/bin/pip install matplotlib`).

    /tmp/ps-venv/bin/python bench/distributed.py            # full run (~25 min on 2 cores)
    /tmp/ps-venv/bin/python bench/distributed.py --quick    # smoke run (~3 min)
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(REPO))

import httpx  # noqa: E402

from feed_latency import parse_wrk  # noqa: E402
from harness import (  # noqa: E402
    DEFAULT_GRAPH, NO_ADDRESS_LIMITS, CpuMeter, pyplot, Deployment, add_stack_arguments, cpu_seconds, create_topic, fmt_cpu, fmt_load, fmt_rate,
    machine, median, pct, run_async, say, shown,
)
PROFILES = {
    # flag: (full, quick)
    "max_accounts": (None, 150),
    "runs": (3, 1),
    "append_seconds": (60, 10),
    "pp_records": (500_000, 100_000),
    "freshness_posts": (200, 20),
    "idle_posts": (50, 10),
}
MIX = {"like": 45, "comment": 25, "follow": 20, "unlike": 5, "unfollow": 5}

# ----- the wrk script of the command mix -------------------------------------------------

MIX_LUA = r"""
-- A mix of commands by many users. Data files: accounts.txt ("username token" a line),
-- posts.txt (post ids), edges.txt ("i:j", 1-based account indices, already following).
local data = "@DATA@"
local W_UNLIKE, W_UNFOLLOW, W_LIKE, W_COMMENT = @UNLIKE@, @UNFOLLOW@, @LIKE@, @COMMENT@
local names, tokens, posts, edges = {}, {}, {}, {}
local liked, followed = {}, {}
local n = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  for line in io.lines(data .. "/accounts.txt") do
    local name, token = line:match("^(%S+) (%S+)$")
    names[#names + 1] = name
    tokens[#tokens + 1] = token
  end
  for line in io.lines(data .. "/posts.txt") do posts[#posts + 1] = line end
  for line in io.lines(data .. "/edges.txt") do edges[line] = true end
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

local function auth(i, json)
  local h = {["Authorization"] = "Bearer " .. tokens[i]}
  if json then h["Content-Type"] = "application/json" end
  return h
end

local function take(list)
  local k = math.random(#list)
  local item = list[k]
  list[k] = list[#list]
  list[#list] = nil
  return item
end

local function like()
  local who, post = math.random(#tokens), posts[math.random(#posts)]
  liked[#liked + 1] = {who, post}
  return wrk.format("POST", "/v1/posts/" .. post .. "/like", auth(who))
end

function request()
  n = n + 1
  local r = math.random(100)
  if r <= W_UNLIKE then
    if #liked > 0 then
      local e = take(liked)
      return wrk.format("DELETE", "/v1/posts/" .. e[2] .. "/like", auth(e[1]))
    end
    return like()
  end
  r = r - W_UNLIKE
  if r <= W_UNFOLLOW then
    if #followed > 0 then
      local e = take(followed)
      return wrk.format("DELETE", "/v1/accounts/" .. names[e[2]] .. "/follow", auth(e[1]))
    end
    return like()
  end
  r = r - W_UNFOLLOW
  if r <= W_LIKE then return like() end
  r = r - W_LIKE
  if r <= W_COMMENT then
    local who, post = math.random(#tokens), posts[math.random(#posts)]
    return wrk.format("POST", "/v1/posts/" .. post .. "/comments", auth(who, true),
      '{"text":"bench comment ' .. n .. ' #bench"}')
  end
  -- follow someone not followed already (never a seeded edge, so unfollows never cut one)
  for _ = 1, 20 do
    local a, b = math.random(#tokens), math.random(#tokens)
    if a ~= b and not edges[a .. ":" .. b] then
      edges[a .. ":" .. b] = true
      followed[#followed + 1] = {a, b}
      return wrk.format("POST", "/v1/accounts/" .. names[b] .. "/follow", auth(a))
    end
  end
  return like()
end
"""
DELAY_LUA = "\nfunction delay()\n  return @DELAY@\nend\n"


# ----- Kafka ------------------------------------------------------------------------------

async def _read_range(bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int]) -> list[tuple[int, int, int, bytes]]:
    """Records [start, end) of each partition: (partition, offset, timestamp ms, value)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = [TopicPartition(topic, p) for p, e in end.items() if e > start.get(p, 0)]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20
    )
    await consumer.start()
    out: list[tuple[int, int, int, bytes]] = []
    try:
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start.get(tp.partition, 0))
        remaining = set(tps)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=20_000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset < end[tp.partition]:
                        out.append((tp.partition, m.offset, m.timestamp, m.value))
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp.partition]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


class KafkaTool:
    """One event loop with a group-less consumer and an admin client, kept open: the
    catch-up loop asks for end offsets and the router's committed offsets many times."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.loop = asyncio.new_event_loop()
        self.consumer: Any = None
        self.admin: Any = None

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        if self.consumer is None:
            self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await self.consumer.start()
            self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await self.admin.start()

    def ends(self, topic: str, partitions: int) -> dict[int, int]:
        from aiokafka import TopicPartition

        async def go() -> dict[int, int]:
            await self._start()
            found = await self.consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
            return {tp.partition: off for tp, off in found.items()}

        return self._run(go())

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The consumer group's committed offsets (next offset to read) on one topic."""

        async def go() -> dict[int, int]:
            await self._start()
            found = await self.admin.list_consumer_group_offsets(group)
            return {tp.partition: meta.offset for tp, meta in found.items() if tp.topic == topic}

        return self._run(go())

    def close(self) -> None:
        async def go() -> None:
            if self.consumer is not None:
                await self.consumer.stop()
                await self.admin.close()

        try:
            self._run(go())
        finally:
            self.loop.close()


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


class Profiler:
    """py-spy sampling one process (100 Hz, without pausing it) until stop(): only the
    thread holding the GIL is sampled, so the samples are where the Python CPU goes and
    their count says how much of the time the GIL was held."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out, self.t0 = out, time.perf_counter()
        spy = py_spy()
        self.proc = (
            subprocess.Popen(
                [spy, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "100", "--nolineno", "--nonblocking", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if spy
            else None
        )

    def stop(self) -> dict[str, Any]:
        seconds = time.perf_counter() - self.t0
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return profile_summary(self.out, seconds) if self.out.exists() else {}


def _package(frame: str) -> str:
    """`func (pkg/mod.py)` -> the top-level package (or module) of the frame."""
    path = frame.rsplit("(", 1)[-1].rstrip(")")
    head = path.split("/", 1)[0]
    return head[:-3] if head.endswith(".py") else head


def profile_summary(raw: Path, seconds: float, rate: int = 100) -> dict[str, Any]:
    """Where a process spent its CPU: by thread kind, by package of the running frame
    (self time), and the functions of our code and of the libraries most often on the stack."""
    threads: Counter = Counter()
    packages: dict[str, Counter] = defaultdict(Counter)
    inclusive: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        if any("concurrent/futures/thread.py" in f for f in frames):
            kind = "thread pool"
        elif any("libevreactor" in f or "asyncorereactor" in f for f in frames):
            kind = "cassandra-driver I/O thread"
        elif frames and frames[0].startswith("<module>"):
            kind = "main thread (event loop)"
        else:
            kind = "other threads"
        threads[kind] += n
        packages[kind][_package(frames[-1])] += n
        for name in {f.split(" (")[0] + " (" + _package(f) + ")" for f in frames}:
            inclusive[name] += n
    if not total:
        return {}
    ours = ("api", "commands", "domain", "projections", "streams", "media")
    interesting = [
        (name, n) for name, n in inclusive.most_common()
        if any(f"({pkg})" in name for pkg in ours) and not name.startswith(("<module>", "main ", "worker ", "serve "))
    ][:12]  # fmt: skip
    return {
        "seconds": seconds,
        "gil": total / rate / seconds,
        "samples": total,
        "threads": {k: v / total for k, v in threads.most_common()},
        "packages": {k: {p: v / total for p, v in c.most_common(6)} for k, c in packages.items()},
        "ours": [(name, n / total) for name, n in interesting],
    }


def fmt_profile(prof: dict[str, Any]) -> list[str]:
    if not prof:
        return ["(py-spy is not installed: no profile; `/tmp/ps-venv/bin/pip install py-spy`)"]
    out = [f"The GIL was held {min(prof['gil'], 1):.0%} of the {prof['seconds']:.0f} s ({prof['samples']:,} samples of the GIL holder at 100 Hz)."]
    for kind, share in prof["threads"].items():
        tops = ", ".join(f"{p} {v:.0%}" for p, v in prof["packages"][kind].items())
        out.append(f"- {kind}: {share:.0%} of the GIL samples; the running frame's package: {tops}")
    if prof["ours"]:
        out.append("- our functions most often on the GIL holder's stack (inclusive share): "
                   + ", ".join(f"`{n}` {v:.0%}" for n, v in prof["ours"][:8]))  # fmt: skip
    return out


# ----- the bench --------------------------------------------------------------------------


class Stalled(Exception):
    """The worker's checkpoints stopped moving before the head."""


@dataclass
class CatchUp:
    backlog: int
    spawn_to_ready: float  # process start -> Faust "Worker ready"
    ready_to_done: float  # ready -> every projection's checkpoints at the head
    per_projection: dict[str, float]  # seconds after ready each projection reached the head
    restarted: bool = False  # the worker stalled and was restarted: the timing is not comparable
    router: float = float("nan")  # seconds after ready the router's committed offsets reached the head (1 s commits)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core during ready -> done

    @property
    def rate(self) -> float:
        return self.backlog / self.ready_to_done if self.ready_to_done > 0 else float("nan")

    @property
    def wall_rate(self) -> float:
        total = self.spawn_to_ready + self.ready_to_done
        return self.backlog / total if total > 0 else float("nan")


@dataclass
class Capture:
    """What the projectors do for a range of events (computed in the SQLite shadow)."""

    events: int = 0
    groups: list[tuple[str, list[Any]]] = field(default_factory=list)  # (projector, writes) per event
    reads: list[tuple[str, Any, Any, dict[str, Any]]] = field(default_factory=list)
    types: Counter = field(default_factory=Counter)
    writes_by_projector: Counter = field(default_factory=Counter)
    reads_by_projector: Counter = field(default_factory=Counter)

    @property
    def writes(self) -> int:
        return sum(len(w) for _, w in self.groups)


class RecordingView:
    """A ReadView in front of the shadow store that notes every read while recording."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.recording = False
        self.reads: list[tuple[str, Any, Any, dict[str, Any]]] = []

    def _note(self, kind: str, table: Any, arg: Any, kw: dict[str, Any]) -> None:
        if self.recording:
            self.reads.append((kind, table, arg, kw))

    def get(self, table: Any, key: Any) -> Any:
        self._note("get", table, dict(key), {})
        return self.inner.get(table, key)

    def get_many(self, table: Any, keys: Any) -> Any:
        self._note("get_many", table, [dict(k) for k in keys], {})
        return self.inner.get_many(table, keys)

    def scan(self, table: Any, partition: Any, **kw: Any) -> Any:
        self._note("scan", table, dict(partition), kw)
        return self.inner.scan(table, partition, **kw)

    def scan_many(self, table: Any, partitions: Any, **kw: Any) -> Any:
        self._note("scan_many", table, [dict(p) for p in partitions], kw)
        return self.inner.scan_many(table, partitions, **kw)


class Bench(Deployment):
    def __init__(self, args: argparse.Namespace) -> None:
        args.backend = "distributed"
        keyspace = "bench_" + re.sub(r"[^a-z0-9_]", "_", args.name.lower())
        super().__init__(args, extra_env={"PHOTOSTREAM_RATE_LIMITS": NO_ADDRESS_LIMITS}, extra_keyspaces=[keyspace + "_raw"])
        self.raw_keyspace = self.keyspace + "_raw"
        self.pp_topic = f"{self.topic}.producer-perf"
        self.shadow: Any = None
        self.raw_store: Any = None
        self.projectors: list[Any] = []
        self.lanes = args.partitions
        self.results: dict[str, Any] = {"runs": []}
        self.started = time.perf_counter()
        self.kafka = KafkaTool(args.kafka)

    # ----- stores ----------------------------------------------------------------------

    def ends(self, topic: str | None = None) -> dict[int, int]:
        return self.kafka.ends(topic or self.topic, self.args.partitions)

    def checkpoints(self) -> dict[tuple[str, int], int]:
        rows = self.session.execute(f"SELECT projection, partition, position FROM {self.keyspace}.projection_checkpoints")
        return {(r.projection, r.partition): r.position for r in rows}

    def covered(self, target: dict[int, int]) -> dict[str, int]:
        """Per projection: how many events of the log up to `target` every lane has applied."""
        cps = self.checkpoints()
        out: dict[str, int] = {}
        for p in self.projectors:
            total = 0
            for source, end in target.items():
                if end <= 0:
                    continue
                done = min(cps.get((f"{p.name}#{lane}", source), -1) for lane in range(self.lanes)) + 1
                total += min(done, end)
            out[p.name] = total
        return out

    def catch_up(self, target: dict[int, int], backlog: int, label: str, profile: Path | None = None) -> CatchUp:
        """Start one worker and time it to the head; a worker that stops making progress is
        noted (with its stack, when py-spy is installed), restarted, and the result flagged."""
        restarted = False
        for _ in range(3):
            spawned, ready = self.start_worker()
            profiler = Profiler(self.procs["worker"].pid, profile) if profile else None
            try:
                catch = self.wait_projected(target, ready, backlog, spawned)
                catch.restarted = restarted
                if profiler is not None:
                    self.results.setdefault("profile", {})["worker"] = profiler.stop()
                return catch
            except Stalled as exc:
                if profiler is not None:
                    profiler.stop()
                self.note_stall(label, str(exc))
                self.stop("worker", timeout=30)
                restarted = True
        raise RuntimeError(f"{label}: the worker stalled three times; see the incidents above")

    def note_stall(self, label: str, detail: str) -> None:
        pid = self.procs["worker"].pid
        stack = ""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(spy).exists():
            dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60).stdout
            main = dump.split('"MainThread"', 1)[-1].split("\nThread ", 1)[0]
            stack = " <- ".join(line.strip().split(" (")[0] for line in main.strip().splitlines()[:6])
        log = (self.data_dir / "worker.log").read_text(errors="replace").splitlines()
        warnings = [l.split("]: ", 1)[-1].strip() for l in log if "WARNING" in l or "ERROR" in l][-3:]
        hung_in = [l.strip().split(", in ")[-1] for l in log if l.strip().startswith("File ") and ", in " in l][-3:]
        incident = (
            f"{label}: the worker (pid {pid}) made no progress for {self.args.stall_seconds:.0f} s ({detail}); "
            f"CPU {cpu_seconds(pid):.0f} s so far; last warnings: {' | '.join(warnings) or 'none'}"
            + (f"; a task it reported hung in: {' <- '.join(reversed(hung_in))}" if hung_in else "")
            + (f"; main thread (py-spy): {stack}" if stack else "")
            + ". Restarted it."
        )
        self.results.setdefault("incidents", []).append(incident)
        say("  !! " + incident)

    def wait_projected(self, target: dict[int, int], ready: float, backlog: int, spawned: float, timeout: float = 1800) -> CatchUp:
        want = sum(target.values())
        progress, progressed = -1, time.monotonic()
        finished: dict[str, float] = {}
        router = float("nan")
        group = f"photostream-projections-{self.topic}"
        meter = CpuMeter({"worker": self.procs["worker"].pid, **self.stack})
        deadline = time.monotonic() + timeout
        last_note = last_router = time.monotonic()
        while True:
            cov = self.covered(target)
            t = time.perf_counter()
            if sum(cov.values()) != progress:
                progress, progressed = sum(cov.values()), time.monotonic()
            elif time.monotonic() - progressed > self.args.stall_seconds:
                raise Stalled(f"slowest projection at {min(cov.values()):,} of {want:,} events")
            for name, n in cov.items():
                if n >= want and name not in finished:
                    finished[name] = t - ready
            if router != router and time.monotonic() - last_router > 0.25:  # nan: not there yet
                last_router = time.monotonic()
                committed = self.kafka.committed(group, self.topic)
                if all(committed.get(p, 0) >= e - 1 for p, e in target.items() if e > 0):
                    router = time.perf_counter() - ready
            if len(finished) == len(self.projectors):
                cpu = meter.stop()
                if router != router:
                    router = t - ready
                return CatchUp(backlog, ready - spawned, t - ready, finished, router=min(router, t - ready), cpu=cpu)
            if self.procs.get("worker") is None or self.procs["worker"].poll() is not None:
                raise RuntimeError(f"the worker exited while catching up; see {self.data_dir / 'worker.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not catch up in {timeout:.0f}s: {cov} of {want}")
            if time.monotonic() - last_note > 15:
                slowest = min(cov, key=cov.__getitem__)
                say(f"  ... catching up: slowest projection {slowest} at {cov[slowest]:,}/{want:,}")
                last_note = time.monotonic()
            time.sleep(0.1)

    # ----- setup ----------------------------------------------------------------------------

    def prepare(self) -> None:
        from projections.registry import ProjectionSettings, all_projectors

        super().prepare()
        self.projectors = all_projectors(ProjectionSettings())

    def seed(self) -> None:
        a = self.args
        seeded = self.seed_graph(a.graph, a.posts_per_account, a.max_accounts)
        seconds, report = seeded["seconds"], seeded["report"]
        ends = self.ends()
        events = sum(ends.values())
        self.results["seed"] = {**seeded, "events": events}
        say(f"  {report}; {seconds:.1f}s wall, {events:,} events in the log")
        # the backlog of the seed: one worker projects it
        catch = self.catch_up(ends, events, "seed backlog")
        self.results["seed_catch_up"] = catch
        say(
            f"  worker projected the seed backlog ({events:,} events) in {catch.ready_to_done:.1f}s after ready "
            f"({catch.rate:,.0f} ev/s; start-up {catch.spawn_to_ready:.1f}s)"
        )
        self.seed_ends = ends

    def load_people(self) -> None:
        """Accounts, tokens (minted with the server's secret), posts and the graph."""
        from api.seed import read_edges

        nodes, edges = read_edges(self.args.graph, self.args.max_accounts)
        ids = {r.username: r.account_id for r in self.session.execute(f"SELECT account_id, username FROM {self.keyspace}.accounts")}
        self.nodes = [n for n in nodes if f"user{n}" in ids]
        if len(self.nodes) != len(nodes):
            raise RuntimeError(f"only {len(self.nodes)} of {len(nodes)} seeded accounts are in the read model")
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.account_ids = [int(ids[f"user{n}"]) for n in self.nodes]
        self.tokens = self.tokens_for(self.account_ids)
        self.neighbours: dict[int, list[int]] = defaultdict(list)
        for x, y in edges:
            self.neighbours[self.index[x]].append(self.index[y])
            self.neighbours[self.index[y]].append(self.index[x])
        self.posts = [str(r.post_id) for r in self.session.execute(f"SELECT post_id FROM {self.keyspace}.posts")]
        r = httpx.get(f"{self.url}/v1/accounts/me", headers={"Authorization": f"Bearer {self.tokens[0]}"}, timeout=30)
        r.raise_for_status()
        wrk_dir = self.data_dir / "wrk"
        wrk_dir.mkdir(exist_ok=True)
        (wrk_dir / "accounts.txt").write_text("".join(f"user{n} {t}\n" for n, t in zip(self.nodes, self.tokens)))
        (wrk_dir / "posts.txt").write_text("".join(p + "\n" for p in self.posts))
        (wrk_dir / "edges.txt").write_text(
            "".join(f"{a + 1}:{b + 1}\n" for a, bs in self.neighbours.items() for b in bs)
        )
        self.wrk_dir = wrk_dir
        say(f"  {len(self.tokens)} users with tokens, {len(self.posts)} posts, {len(edges) * 2:,} follows")

    def wrk_script(self, delay_ms: float = 0.0) -> Path:
        text = MIX_LUA.replace("@DATA@", str(self.wrk_dir))
        for key, weight in MIX.items():
            text = text.replace(f"@{key.upper()}@", str(weight))
        if delay_ms > 0:
            text += DELAY_LUA.replace("@DELAY@", f"{delay_ms:.1f}")
        path = self.wrk_dir / f"mix-{int(delay_ms * 10)}.lua"
        path.write_text(text)
        return path

    # ----- shadow replay: the writes and reads of the projectors ------------------------------

    def open_shadow(self) -> None:
        from projections.cassandra_store import CassandraReadStore
        from projections.sqlite_store import SqliteReadStore

        self.shadow = SqliteReadStore.from_url(f"sqlite:///{self.data_dir / 'shadow.db'}")
        self.shadow.ensure_tables(t for p in self.projectors for t in p.tables)
        self.shadow_view = RecordingView(self.shadow)
        self.shadow_at: dict[int, int] = {}
        self.raw_store = CassandraReadStore.from_url(f"cassandra://{self.args.cassandra}/{self.raw_keyspace}")
        self.raw_store.ensure_tables(t for p in self.projectors for t in p.tables)

    def replay(self, upto: dict[int, int], capture: bool) -> Capture:
        """Run the projectors over the log from where the shadow stopped up to `upto`
        (cross-partition order: the records' timestamps), noting reads and writes."""
        from domain.events import EventDecodeError, decode_event

        records = run_async(_read_range(self.args.kafka, self.topic, self.shadow_at, upto))
        records.sort(key=lambda r: (r[2], r[0], r[1]))
        cap = Capture()
        view = self.shadow_view
        view.reads = []
        with self.shadow.unit_of_work():
            for _, _, _, value in records:
                try:
                    event = decode_event(value)
                except EventDecodeError:
                    continue
                cap.events += 1
                cap.types[event.type] += 1
                for projector in self.projectors:
                    if not projector.handles(event):
                        continue
                    before = len(view.reads)
                    view.recording = capture
                    writes = projector.project(event, view)
                    view.recording = False
                    self.shadow.apply(writes)
                    if capture:
                        cap.groups.append((projector.name, writes))
                        cap.writes_by_projector[projector.name] += len(writes)
                        cap.reads_by_projector[projector.name] += len(view.reads) - before
        cap.reads = view.reads
        view.reads = []
        self.shadow_at = dict(upto)
        return cap

    def raw_limits(self, cap: Capture) -> dict[str, float]:
        """Time the captured writes (and reads) sent straight through cassandra-driver."""
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchType

        from projections.cassandra_store import CLOCK, SMALL_APPLY_BYTES, SMALL_APPLY_STATEMENTS, _batch

        raw = self.raw_store
        conc = self.args.raw_concurrency

        def timed(statements: list[Any], **kw: Any) -> float:
            started = time.perf_counter()
            execute_concurrent(raw.session, [(s, None) for s in statements], concurrency=conc, raise_on_first_error=True, **kw)
            return time.perf_counter() - started

        flat = [w for _, writes in cap.groups for w in writes]
        first = CLOCK.reserve(len(flat))
        singles = [raw._bind_write(w, first + i).statement for i, w in enumerate(flat)]
        single_s = timed(singles)

        grouped: list[Any] = []
        for _, writes in cap.groups:
            if not writes:
                continue
            first = CLOCK.reserve(len(writes))
            bound = [raw._bind_write(w, first + i) for i, w in enumerate(writes)]
            if len(bound) == 1:
                grouped.append(bound[0].statement)
            elif len(bound) <= SMALL_APPLY_STATEMENTS and sum(b.size for b in bound) <= SMALL_APPLY_BYTES:
                grouped.append(_batch(BatchType.LOGGED, (b.statement for b in bound)))
            else:
                grouped.extend(raw._pack(bound))
        grouped_s = timed(grouped)

        reads: list[Any] = []
        for kind, table, arg, kw in cap.reads:
            if kind == "get":
                reads.append(raw._bind_get(table, arg))
            elif kind == "get_many":
                reads.extend(raw._bind_get(table, k) for k in arg)
            elif kind == "scan":
                reads.append(raw._bind_scan(table, arg, kw.get("start_after"), kw.get("end_before"), kw.get("limit")))
            else:
                reads.extend(raw._bind_scan(table, p, kw.get("start_after"), kw.get("end_before"), kw.get("limit")) for p in arg)
        reads_s = timed(reads, execution_profile=raw._reads) if reads else 0.0
        return {
            "statements": len(singles),
            "single_s": single_s,
            "grouped_requests": len(grouped),
            "grouped_s": grouped_s,
            "reads": len(reads),
            "reads_s": reads_s,
        }

    # ----- the measurements -----------------------------------------------------------------

    def producer_perf(self, record_size: int) -> dict[str, float]:
        from stack.layout import Layout

        lib = Layout.default().kafka_home / "lib"
        argv = [
            "java", "-cp", f"{lib}/*", "org.apache.kafka.tools.ProducerPerformance",
            "--topic", self.pp_topic, "--num-records", str(self.args.pp_records),
            "--record-size", str(record_size), "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={self.args.kafka}", "acks=all", "enable.idempotence=true",
        ]  # fmt: skip
        self.results["pp_command"] = shlex.join(argv).replace(str(lib), "<kafka lib>")
        out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        found = re.findall(
            r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency,"
            r" (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th",
            out.stdout,
        )
        if not found:
            raise RuntimeError(f"cannot read ProducerPerformance's output:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        sent, rate, mbs, avg, mx, p50, p95, p99 = found[-1]
        return {"records": int(sent), "rps": float(rate), "mb_s": float(mbs), "p50_ms": float(p50), "p99_ms": float(p99)}

    def run_wrk(self, script: Path, seconds: int, connections: int) -> dict[str, float]:
        out = subprocess.run(
            ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), self.url],
            capture_output=True, text=True, timeout=seconds + 120, check=True,
        ).stdout  # fmt: skip
        stats = parse_wrk(out)
        m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
        stats["requests"] = float(m.group(1)) if m else float("nan")
        stats["seconds"] = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)] if m else float(seconds)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        stats["socket_errors"] = float(sum(map(int, errors.groups()))) if errors else 0.0
        return stats

    def one_run(self, number: int, record_size: int) -> dict[str, Any]:
        a = self.args
        load = os.getloadavg()
        say(f"run {number}/{a.runs}: load average {fmt_load(load)}")
        self.stop("worker")
        start = self.ends()
        say(f"  append: wrk -c{a.connections} for {a.append_seconds}s, mix {MIX} (worker stopped)")
        meter = CpuMeter({"api": self.procs["serve"].pid, **self.stack})
        stats = self.run_wrk(self.wrk_script(), a.append_seconds, a.connections)
        append_cpu = meter.stop()
        end = self.ends()
        appended = sum(end.values()) - sum(start.values())
        api_rate = appended / stats["seconds"]
        say(
            f"  -> {appended:,} events in {stats['seconds']:.1f}s = {api_rate:,.0f} events/s "
            f"({stats['rps']:,.0f} req/s, p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms, non-2xx {stats['non_2xx']:.0f})"
        )
        say(f"     CPU, % of one core: {fmt_cpu(append_cpu)}")
        say(f"  limit: Kafka ProducerPerformance, {a.pp_records:,} records of {record_size} B, acks=all, idempotent")
        pp = self.producer_perf(record_size)
        say(f"  -> {pp['rps']:,.0f} records/s ({pp['mb_s']:.1f} MB/s, p99 {pp['p99_ms']:.0f} ms)")
        say(f"  project: one worker on the backlog of {appended:,} events")
        catch = self.catch_up(end, appended, f"run {number}")
        say(
            f"  -> caught up {catch.ready_to_done:.1f}s after ready = {catch.rate:,.0f} events/s "
            f"(start-up {catch.spawn_to_ready:.1f}s; router done at {catch.router:.1f}s; "
            f"slowest {max(catch.per_projection, key=catch.per_projection.get)})"
        )
        say(f"     CPU, % of one core: {fmt_cpu(catch.cpu)}")
        say("  limit: the projectors' writes for this backlog, replayed raw (shadow replay first)")
        cap = self.replay(end, capture=True)
        raw = self.raw_limits(cap)
        raw_rate = cap.events / raw["single_s"]
        say(
            f"  -> {raw['statements']:,} statements in {raw['single_s']:.1f}s = {raw['statements'] / raw['single_s']:,.0f} stmt/s"
            f" = {raw_rate:,.0f} events/s; as the adapter groups them ({raw['grouped_requests']:,} requests):"
            f" {cap.events / raw['grouped_s']:,.0f} events/s; the reads ({raw['reads']:,}): {raw['reads_s']:.1f}s"
        )
        time.sleep(3)  # let the worker commit its offsets before the next run stops it
        return {
            "load": load,
            "wrk": stats,
            "append_cpu": append_cpu,
            "appended": appended,
            "api_rate": api_rate,
            "pp": pp,
            "catch": catch,
            "capture": {
                "events": cap.events,
                "writes": cap.writes,
                "reads": len(cap.reads),
                "types": dict(cap.types),
                "writes_by_projector": dict(cap.writes_by_projector),
                "reads_by_projector": dict(cap.reads_by_projector),
            },
            "raw": raw,
            "raw_rate": raw_rate,
            "raw_grouped_rate": cap.events / raw["grouped_s"],
            "raw_rw_rate": cap.events / (raw["single_s"] + raw["reads_s"]),
        }

    def profiled_run(self) -> None:
        """One more append + catch-up, not counted, with py-spy on the API and the worker."""
        a = self.args
        say("profiled run (not counted): py-spy on the API during an append run and on the worker while it catches up")
        self.stop("worker")
        start = self.ends()
        profiler = Profiler(self.procs["serve"].pid, self.data_dir / "api.pyspy")
        stats = self.run_wrk(self.wrk_script(), a.append_seconds, a.connections)
        api = profiler.stop()
        end = self.ends()
        appended = sum(end.values()) - sum(start.values())
        catch = self.catch_up(end, appended, "profiled run", profile=self.data_dir / "worker.pyspy")
        prof = self.results.setdefault("profile", {})
        prof.update({"api": api, "api_rate": appended / stats["seconds"], "worker_rate": catch.rate, "appended": appended})
        for name in ("api", "worker"):
            for line in fmt_profile(prof.get(name, {})):
                say(f"  {name}: {line}")

    # ----- freshness --------------------------------------------------------------------------

    def freshness(self, background_rate: float) -> dict[str, Any]:
        from api.seed import generated_photo

        a = self.args
        rng = random.Random(98)
        candidates = [i for i in range(len(self.nodes)) if self.neighbours.get(i)]
        authors = rng.sample(candidates, min(len(candidates), max(a.probes * 4, min(40, a.freshness_posts))))
        say(f"freshness: uploading one photo for each of {len(authors)} authors")
        media: dict[int, str] = {}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for i in authors:
                r = client.post(
                    "/v1/media",
                    headers={"Authorization": f"Bearer {self.tokens[i]}"},
                    files={"file": ("p.jpg", generated_photo(10_000 + i, size=320), "image/jpeg")},
                )
                r.raise_for_status()
                media[i] = r.json()["id"]

        def jobs(n: int) -> list[tuple[int, int]]:
            picked = [authors[k % len(authors)] for k in range(n)]
            return [(author, rng.choice(self.neighbours[author])) for author in picked]

        idle = None
        if a.idle_posts:
            time.sleep(3)  # the uploads' events projected
            say(f"  reference without background load: {a.idle_posts} posts, {a.probes} probes")
            idle = self.probe_phase(jobs(a.idle_posts), media)
        conns = a.background_connections
        delay_ms = conns * 1000.0 / background_rate if background_rate > 0 else 0
        for _ in range(2):  # wrk paces by a pause per request: learn how long the requests themselves take
            got = self.run_wrk(self.wrk_script(delay_ms), 4, conns)["rps"]
            busy_ms = max(conns * 1000.0 / max(got, 1e-9) - delay_ms, 0.0)
            say(f"  calibrating the background: {delay_ms:.0f} ms pause -> {got:,.0f} req/s")
            delay_ms = max(conns * 1000.0 / background_rate - busy_ms, 1.0)
        script = self.wrk_script(delay_ms)
        say(
            f"  background: wrk -c{conns} with a {delay_ms:.0f} ms pause per request "
            f"(target {background_rate:,.0f} req/s); {a.probes} probes, {a.freshness_posts} posts, poll every {a.poll_ms} ms"
        )
        log = open(self.data_dir / "wrk-background.log", "w")
        background = subprocess.Popen(
            ["wrk", f"-t{min(2, conns)}", f"-c{conns}", "-d3600s", "--latency", "-s", str(script), self.url],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs["wrk-background"] = background
        time.sleep(5)  # settle into the steady state
        result = self.probe_phase(jobs(a.freshness_posts), media)
        self.stop("wrk-background", signal.SIGINT, timeout=30)
        log.close()
        try:
            bg = parse_wrk((self.data_dir / "wrk-background.log").read_text())
        except RuntimeError:
            bg = {}
        result.update({"background_target": background_rate, "background_wrk": bg, "delay_ms": delay_ms, "idle": idle})
        result["background_events_per_s"] = result.pop("events_per_s")
        result["fanout"] = self.fanout_cost([s for s in result.pop("post_ids")][:40])
        fan = result["fanout"]
        say(
            f"     home_timeline post_created, replayed against Cassandra: {fan['reads']:.0f} sequential reads for "
            f"{fan['followers']:.0f} followers, {fan['ms']:.1f} ms (medians of {fan['posts']} posts)"
        )
        return result

    def probe_phase(self, jobs: list[tuple[int, int]], media: dict[int, str]) -> dict[str, Any]:
        """Probe freshness for `jobs` (author, reader) with whatever load is running."""
        from streams.faust_app import projection_topic

        lane = projection_topic(self.topic, next(p for p in self.projectors if p.name == "home_timeline"))
        t0, ends0, lane0 = time.perf_counter(), self.ends(), self.ends(lane)
        meter = CpuMeter({"api": self.procs["serve"].pid, "worker": self.procs["worker"].pid, **self.stack})
        samples = asyncio.run(self._probe(jobs, media))
        cpu = meter.stop()
        t1, ends1, lane1 = time.perf_counter(), self.ends(), self.ends(lane)
        lag_end = sum(ends1.values()) - min(self.covered(ends1).values())
        appended = sum(ends1.values()) - sum(ends0.values())
        posts = [s for s in samples if s["seen_ms"] is not None]
        stages = self.freshness_stages(posts, ends0, ends1, lane, lane0, lane1)
        result = {
            "posts": len(samples),
            "seen": len(posts),
            "missed": len(samples) - len(posts),
            "post_ms": [s["post_ms"] for s in samples],
            "seen_ms": [s["seen_ms"] for s in posts],
            "get_ms": [g for s in samples for g in s["get_ms"]],
            "polls": [s["polls"] for s in posts],
            "post_ids": [s["post_id"] for s in posts],
            "seconds": t1 - t0,
            "events_per_s": (appended - len(samples)) / (t1 - t0),
            "lag_at_end": lag_end,
            "cpu": cpu,
            "stages": stages,
            "lag_samples": self.lag_samples,
        }
        say(
            f"  -> post->feed p50 {pct(result['seen_ms'], 50):.0f} ms, p99 {pct(result['seen_ms'], 99):.0f} ms; "
            f"POST /v1/posts p50 {pct(result['post_ms'], 50):.0f} ms, p99 {pct(result['post_ms'], 99):.0f} ms; "
            f"other events {result['events_per_s']:,.0f}/s; lag at the end {lag_end} events; missed {result['missed']}"
        )
        for stage, values in stages.items():
            say(f"     {stage}: p50 {pct(values, 50):.0f} ms, p99 {pct(values, 99):.0f} ms")
        if self.lag_samples:
            say(f"     projection lag sampled every second: median {median(self.lag_samples):.0f}, max {max(self.lag_samples)} events")
        say(f"     CPU, % of one core: {fmt_cpu(cpu)}")
        return result

    def fanout_cost(self, post_ids: list[str]) -> dict[str, float]:
        """What the home_timeline projector spends on one new post before it writes: run
        its handler for the probe posts against the live keyspace (reads only; the writes
        it returns are not applied) and count and time its reads, all synchronous."""
        from domain.events import PostCreated, decode_event
        from projections.cassandra_store import CassandraReadStore

        store = CassandraReadStore.from_url(f"cassandra://{self.args.cassandra}/{self.keyspace}")
        projector = next(p for p in self.projectors if p.name == "home_timeline")
        view = RecordingView(store)
        reads, times, followers = [], [], []
        try:
            records = run_async(_read_range(self.args.kafka, self.topic, self.seed_ends, self.ends()))
            wanted = set(post_ids)
            for _, _, _, value in records:
                event = decode_event(value)
                if isinstance(event.data, PostCreated) and str(event.data.post_id) in wanted:
                    view.reads, view.recording = [], True
                    t0 = time.perf_counter()
                    writes = projector.project(event, view)
                    times.append((time.perf_counter() - t0) * 1000)
                    view.recording = False
                    reads.append(len(view.reads))
                    followers.append(sum(1 for w in writes if getattr(w, "table", None) is not None and w.table.name == "home_timeline"))
        finally:
            store.close()
        return {"posts": len(times), "reads": median(reads), "ms": median(times), "followers": median(followers)}

    def freshness_stages(
        self, posts: list[dict[str, Any]], ends0: dict[int, int], ends1: dict[int, int], lane: str, lane0: dict[int, int], lane1: dict[int, int]
    ) -> dict[str, list[float]]:
        """Where a post's time goes, on one wall clock: the Kafka record timestamps
        (CreateTime) of the API's record in the log and of the router's copy in the
        home_timeline lane, the WRITETIME of the reader's home_timeline row (the worker
        stamps its writes with its wall clock, USING TIMESTAMP, when it sends them), and the
        poll that saw the post."""
        from streams.faust_app import decode_lane_message

        def created(records: list[tuple[int, int, int, bytes]]) -> dict[str, int]:
            """post id -> CreateTime of the record carrying its PostCreated (the log's
            single events and the lanes' bundles alike)."""
            found = {}
            for partition, offset, ts, value in records:
                entries, _ = decode_lane_message(value, partition, offset, None)
                for entry in entries:
                    if entry.event is not None and entry.event.type == "PostCreated":
                        found[str(entry.event.data.post_id)] = ts
            return found

        logged = created(run_async(_read_range(self.args.kafka, self.topic, ends0, ends1)))
        laned = created(run_async(_read_range(self.args.kafka, lane, lane0, lane1)))
        written = self.session.prepare(
            f"SELECT WRITETIME(author_id) FROM {self.keyspace}.home_timeline WHERE owner_id = ? AND post_id = ?"
        )
        stages: dict[str, list[float]] = {
            "API: record created -> POST answered": [],
            "router: log -> home_timeline lane": [],
            "worker: lane -> timeline row written": [],
            "API: row written -> seen by a poll": [],
        }
        for s in posts:
            src, copy = logged.get(s["post_id"]), laned.get(s["post_id"])
            if src is None or copy is None:
                continue
            row = self.session.execute(written, (self.account_ids[s["reader"]], int(s["post_id"]))).one()
            stages["API: record created -> POST answered"].append(s["returned_wall"] * 1000 - src)
            stages["router: log -> home_timeline lane"].append(copy - src)
            if row is not None and row[0]:
                stages["worker: lane -> timeline row written"].append(row[0] / 1000 - copy)
                stages["API: row written -> seen by a poll"].append(s["seen_wall"] * 1000 - row[0] / 1000)
        return stages

    async def _probe(self, jobs: list[tuple[int, int]], media: dict[int, str]) -> list[dict[str, Any]]:
        a = self.args
        queue: asyncio.Queue = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        samples: list[dict[str, Any]] = []
        poll = a.poll_ms / 1000
        self.lag_samples: list[int] = []

        def lag_now() -> int:
            ends = self.ends()
            return sum(ends.values()) - min(self.covered(ends).values())

        async def sampler() -> None:
            while not queue.empty():
                self.lag_samples.append(await asyncio.to_thread(lag_now))
                await asyncio.sleep(1.0)

        misses = 0

        async def prober(seed: int) -> None:
            nonlocal misses
            rng = random.Random(seed)
            async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
                while not queue.empty():
                    author, reader = queue.get_nowait()
                    body = {"caption": f"freshness probe {len(samples)} #bench", "media_ids": [media[author]]}
                    t0 = time.perf_counter()
                    r = await client.post("/v1/posts", json=body, headers={"Authorization": f"Bearer {self.tokens[author]}"})
                    t1, returned_wall = time.perf_counter(), time.time()
                    r.raise_for_status()
                    post_id = r.json()["id"]
                    gets: list[float] = []
                    seen = seen_wall = None
                    while time.perf_counter() - t1 < a.freshness_timeout:
                        g0 = time.perf_counter()
                        f = await client.get("/v1/feed?limit=10", headers={"Authorization": f"Bearer {self.tokens[reader]}"})
                        g1 = time.perf_counter()
                        gets.append((g1 - g0) * 1000)
                        if f.status_code == 200 and any(item["id"] == post_id for item in f.json()["items"]):
                            seen, seen_wall = (g1 - t1) * 1000, time.time()
                            break
                        await asyncio.sleep(poll)
                    misses = misses + 1 if seen is None else 0
                    if misses >= 5:
                        say("  !! five posts in a row never reached the feed; stopping the probes")
                        while not queue.empty():
                            queue.get_nowait()
                    samples.append({
                        "post_id": post_id, "reader": reader, "post_ms": (t1 - t0) * 1000, "seen_ms": seen, "get_ms": gets, "polls": len(gets),
                        "returned_wall": returned_wall, "seen_wall": seen_wall,
                    })  # fmt: skip
                    await asyncio.sleep(rng.uniform(0.02, 0.2))  # do not march in step with the worker's batches

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(prober(k) for k in range(a.probes)))
        await sampling
        return samples

    # ----- the whole thing ---------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        self.results["machine"] = machine()
        m = self.results["machine"]
        say(f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, load average at start {fmt_load(m['load'])}")
        self.prepare()
        self.seed()
        self.open_shadow()
        say("shadow replay of the seeded log (to compute the projectors' writes later)")
        started = time.perf_counter()
        records = run_async(_read_range(a.kafka, self.topic, {}, self.seed_ends))
        sizes = [len(r[3]) for r in records]
        self.results["event_bytes"] = {"mean": statistics.mean(sizes), "p50": pct(sizes, 50), "p99": pct(sizes, 99)}
        del records
        self.replay(self.seed_ends, capture=False)
        say(f"  done in {time.perf_counter() - started:.1f}s; mean event size {self.results['event_bytes']['mean']:.0f} B")
        record_size = a.record_size or int(round(self.results["event_bytes"]["mean"]))
        self.results["record_size"] = record_size
        self.start_serve()
        self.load_people()
        create_topic(a.kafka, self.pp_topic, a.partitions)
        number = 0
        while sum(1 for r in self.results["runs"] if not r["catch"].restarted) < a.runs and number < a.runs + 2:
            number += 1  # a run whose worker stalled is reported but not counted: up to two extra runs
            self.results["runs"].append(self.one_run(number, record_size))
        runs = [r for r in self.results["runs"] if not r["catch"].restarted] or self.results["runs"]
        if a.profile and py_spy():
            self.profiled_run()
        elif a.profile:
            say("py-spy is not installed: no profiled run (/tmp/ps-venv/bin/pip install py-spy)")
        rate = a.background_rate or 0.5 * min(median([r["api_rate"] for r in runs]), median([r["catch"].rate for r in runs]))
        self.results["freshness"] = self.freshness(rate)
        self.results["load_at_end"] = os.getloadavg()
        self.results["seconds"] = time.perf_counter() - self.started

    def cleanup(self) -> None:
        for name in list(self.procs):
            self.stop(name, signal.SIGINT if name.startswith("wrk") else signal.SIGTERM)
        if self.raw_store is not None:
            self.raw_store.close()
        try:
            self.kafka.close()
        except Exception:  # noqa: BLE001
            pass
        super().cleanup()


# ----- report -----------------------------------------------------------------------------


def counted(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs whose worker did not stall (all of them if every one did)."""
    return [r for r in runs if not r["catch"].restarted] or runs


def summarize(b: Bench) -> dict[str, Any]:
    res = b.results
    runs = counted(res["runs"])
    api = [r["api_rate"] for r in runs]
    pp = [r["pp"]["rps"] for r in runs]
    worker = [r["catch"].rate for r in runs]
    worker_wall = [r["catch"].wall_rate for r in runs]
    raw = [r["raw_rate"] for r in runs]
    raw_grouped = [r["raw_grouped_rate"] for r in runs]
    raw_rw = [r["raw_rw_rate"] for r in runs]
    fr = res["freshness"]
    return {
        "api": median(api), "pp": median(pp), "worker": median(worker), "worker_wall": median(worker_wall),
        "raw": median(raw), "raw_grouped": median(raw_grouped), "raw_rw": median(raw_rw),
        "api_runs": api, "pp_runs": pp, "worker_runs": worker, "raw_runs": raw, "raw_grouped_runs": raw_grouped,
        "fresh_p50": pct(fr["seen_ms"], 50), "fresh_p99": pct(fr["seen_ms"], 99),
        "post_p50": pct(fr["post_ms"], 50), "post_p99": pct(fr["post_ms"], 99),
        "get_p50": pct(fr["get_ms"], 50), "get_p99": pct(fr["get_ms"], 99),
    }  # fmt: skip


def report_markdown(b: Bench, s: dict[str, Any]) -> str:
    res, a = b.results, b.args
    m = res["machine"]
    runs = res["runs"]
    fr = res["freshness"]
    seed = res["seed"]
    sc: CatchUp = res["seed_catch_up"]
    n = len(counted(runs))
    lines = [
        f"# Distributed pipeline: figures beside their limits ({dt.date.today().isoformat()}{', quick' if a.quick else ''})",
        "",
        f"Command: `{shlex.join([shown(Path(sys.executable)), 'bench/distributed.py', *sys.argv[1:]])}` (in the repository) — "
        f"took {res['seconds'] / 60:.1f} min.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}, Python {m['python']}. "
        f"Load average at start {fmt_load(m['load'])}, at the end {fmt_load(res['load_at_end'])}. "
        "Kafka, Cassandra, MinIO, the API, the worker and the load tools all share these cores.",
        "",
        f"Data: `{seed['command']}` — {seed['report']}; **{seed['seconds']:.0f} s wall** "
        f"({seed['events']:,} events; mean event {res['event_bytes']['mean']:.0f} B, p99 {res['event_bytes']['p99']:.0f} B). "
        f"Topic of {a.partitions} partitions, Cassandra keyspace with replication 1, one `photostream worker --threads {a.worker_threads}`.",
        "",
        f"## Figures (medians of {n} run{'s' if n > 1 else ''} for rates)",
        "",
        "| figure | measured | limit, same run | ratio |",
        "|---|---:|---|---:|",
        f"| 1. events appended per second through the API (wrk -c{a.connections}, command mix) | {fmt_rate(s['api'])} ev/s "
        f"| Kafka ProducerPerformance, {res['record_size']} B records, acks=all, idempotent: {fmt_rate(s['pp'])} rec/s "
        f"| {s['api'] / s['pp']:.2%} (1/{s['pp'] / s['api']:,.0f}) |",
        f"| 2. events per second one worker projects (backlog of ~{median([r['appended'] for r in runs]):,.0f} events) "
        f"| {fmt_rate(s['worker'])} ev/s | the same rows written raw, cassandra-driver execute_concurrent at {a.raw_concurrency}: "
        f"{fmt_rate(s['raw'])} ev/s | {s['worker'] / s['raw']:.2f} (1/{s['raw'] / s['worker']:.1f}) |",
        f"| 3. post-to-feed freshness, p50 / p99 ({fr['seen']} posts, {a.probes} probes, poll {a.poll_ms} ms) "
        f"| {s['fresh_p50']:.0f} / {s['fresh_p99']:.0f} ms | `POST /v1/posts` latency p50 / p99: {s['post_p50']:.0f} / {s['post_p99']:.0f} ms "
        f"| x{s['fresh_p50'] / s['post_p50']:.1f} / x{s['fresh_p99'] / s['post_p99']:.1f} |",
        "",
        "Beside figure 2, from the same captured work: the same writes grouped the way the Cassandra adapter sends them "
        f"(a LOGGED batch per event and projector): {fmt_rate(s['raw_grouped'])} ev/s; the single-statement writes plus the "
        f"projectors' reads replayed raw (both at concurrency {a.raw_concurrency}, one after the other): {fmt_rate(s['raw_rw'])} ev/s. "
        f"Worker rate counted from process start instead of Faust's \"ready\": {fmt_rate(s['worker_wall'])} ev/s. "
        f"Worker / adapter-grouped raw: {s['worker'] / s['raw_grouped']:.2f}.",
        "",
        f"Beside figure 3: without background load the same probes saw post-to-feed p50 / p99 "
        f"{pct(fr['idle']['seen_ms'], 50):.0f} / {pct(fr['idle']['seen_ms'], 99):.0f} ms ({len(fr['idle']['seen_ms'])} posts)."
        if fr.get("idle") else "",
        "",
        f"Seed backlog ({sc.backlog:,} events: accounts, follows, posts) projected by one worker in {sc.ready_to_done:.1f} s after ready "
        f"= {fmt_rate(sc.rate)} ev/s (start-up {sc.spawn_to_ready:.1f} s); slowest projection "
        f"{max(sc.per_projection, key=sc.per_projection.get)} ({max(sc.per_projection.values()):.1f} s)"
        + (" — after a restart of a stalled worker, so not comparable." if sc.restarted else "."),
        *(["", "**Incidents:**", ""] + [f"- {i}" for i in res.get("incidents", [])] if res.get("incidents") else []),
        "",
        "## Observations computed from this run",
        "",
        *observations(b, s),
        "",
        "## Runs",
        "",
        "Appending (worker stopped). CPU in % of one core over the wrk run; `machine` is every process on the box "
        f"(out of {m['cores']} x 100%).",
        "",
        "| run | load avg | appended | API ev/s | req/s | wrk p50 / p99 ms | non-2xx, socket errors | ProducerPerf rec/s (MB/s, p99 ms) | CPU |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        w, pp = r["wrk"], r["pp"]
        lines.append(
            f"| {i} | {fmt_load(r['load'])} | {r['appended']:,} | {r['api_rate']:,.0f} | {w['rps']:,.0f} | {w['p50_ms']:.1f} / {w['p99_ms']:.1f} "
            f"| {w['non_2xx']:.0f}, {w.get('socket_errors', 0):.0f} | {pp['rps']:,.0f} ({pp['mb_s']:.1f}, {pp['p99_ms']:.0f}) | {fmt_cpu(r['append_cpu'])} |"
        )
    lines += [
        "",
        "Projecting that backlog: one worker from Faust's ready to every checkpoint at the head; the router is done when the "
        "consumer group's committed offsets on the events topic reach the head (Faust commits every second). Raw: the same "
        f"work through cassandra-driver at concurrency {a.raw_concurrency}.",
        "",
        "| run | backlog | worker s (start-up) | router done s | worker ev/s | CPU | statements | raw single s | raw ev/s "
        "| adapter-grouped requests, ev/s | reads | raw reads s |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for i, r in enumerate(runs, 1):
        c: CatchUp = r["catch"]
        lines.append(
            f"| {i}{' (stalled, not counted)' if c.restarted else ''} | {c.backlog:,} | {c.ready_to_done:.1f} ({c.spawn_to_ready:.1f}) | {c.router:.1f} | {c.rate:,.0f} | {fmt_cpu(c.cpu)} "
            f"| {r['raw']['statements']:,} | {r['raw']['single_s']:.2f} | {r['raw_rate']:,.0f} "
            f"| {r['raw']['grouped_requests']:,}, {r['raw_grouped_rate']:,.0f} | {r['raw']['reads']:,} | {r['raw']['reads_s']:.2f} |"
        )
    last = counted(runs)[-1]
    last_i = runs.index(last) + 1
    capture = last["capture"]
    lines += [
        "",
        f"What one backlog is (run {last_i}): {capture['events']:,} events "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(capture['types'].items(), key=lambda kv: -kv[1]))}); "
        f"the projectors read {capture['reads']:,} times and write {capture['writes']:,} rows "
        f"({capture['reads'] / max(capture['events'], 1):.1f} reads and {capture['writes'] / max(capture['events'], 1):.1f} writes per event).",
        "",
        f"| projection | reads | writes | reached the head, s after ready (run {last_i}; router done at {last['catch'].router:.1f} s) |",
        "|---|---:|---:|---:|",
    ]
    for name in sorted(last["catch"].per_projection, key=last["catch"].per_projection.get, reverse=True):
        lines.append(
            f"| {name} | {capture['reads_by_projector'].get(name, 0):,} | {capture['writes_by_projector'].get(name, 0):,} "
            f"| {last['catch'].per_projection[name]:.1f} |"
        )
    bg = fr.get("background_wrk") or {}
    idle = fr.get("idle")

    def row(label: str, values: list[float], digits: int = 0) -> str:
        if not values:
            return f"| {label} | – | – | – | – |"
        return f"| {label} | {pct(values, 50):.{digits}f} | {pct(values, 90):.{digits}f} | {pct(values, 99):.{digits}f} | {max(values):.{digits}f} |"

    def phase(label: str, ph: dict[str, Any]) -> list[str]:
        return [
            row(f"{label}: post to follower's feed", ph["seen_ms"]),
            row(f"{label}: `POST /v1/posts` (baseline)", ph["post_ms"], 1),
            row(f"{label}: `GET /v1/feed?limit=10` (the polls)", ph["get_ms"], 1),
            *[row(f"{label}, stage: {stage}", v) for stage, v in ph["stages"].items()],
        ]

    lines += [
        "",
        "## Freshness",
        "",
        f"Under load: {fr['posts']} posts by {a.probes} concurrent probes over {fr['seconds']:.0f} s; {fr['missed']} not seen within "
        f"{a.freshness_timeout:.0f} s. Background: wrk -c{a.background_connections} with a {fr['delay_ms']:.0f} ms pause per request "
        f"(target {fr['background_target']:,.0f} req/s = half the smaller of the median API and worker rates), achieved "
        f"{fr['background_events_per_s']:,.0f} events/s"
        + (f", {bg['rps']:,.0f} req/s, p50 {bg['p50_ms']:.1f} ms, p99 {bg['p99_ms']:.1f} ms" if bg else "")
        + f". Projection lag (events in the log not yet applied by the slowest projection) sampled every second: median "
        f"{median(fr['lag_samples']):.0f}, max {max(fr['lag_samples'] or [0])}; {fr['lag_at_end']:,} when the probes ended. "
        f"CPU, % of one core: {fmt_cpu(fr['cpu'])}.",
        "",
    ]
    if idle:
        lines += [
            f"Reference without background load (before it): {idle['posts']} posts, {idle['missed']} missed; other events "
            f"{idle['events_per_s']:,.0f}/s; CPU, % of one core: {fmt_cpu(idle['cpu'])}.",
            "",
        ]
    lines += [
        "| ms | p50 | p90 | p99 | max |",
        "|---|---:|---:|---:|---:|",
        *phase("loaded", fr),
        *(phase("idle", idle) if idle else []),
        "",
        "The stages are read off one wall clock (everything runs on this machine): the Kafka record timestamps (CreateTime) of "
        "the API's `PostCreated` in the log and of the router's copy in the `home_timeline` lane, the `WRITETIME` of the "
        "follower's `home_timeline` row (the worker stamps its writes with its wall clock when it sends them, after the "
        "projector's reads), and the poll that saw the post (a poll costs one `GET /v1/feed` plus the 5 ms pause).",
        "",
        f"The home_timeline projector's handler for a new post, run for {fr['fanout']['posts']} of the probe posts against the live "
        f"keyspace (reads only, writes not applied): {fr['fanout']['reads']:.0f} synchronous reads, one after the other, for an author "
        f"with {fr['fanout']['followers']:.0f} followers: {fr['fanout']['ms']:.1f} ms before its first write (medians).",
        "",
    ]
    prof = res.get("profile")
    if prof:
        lines += [
            "## Where the CPU goes (an extra, uncounted run with py-spy)",
            "",
            f"py-spy samples at 100 Hz without pausing the process. That run appended {prof.get('appended', 0):,} events at "
            f"{prof.get('api_rate', 0):,.0f} events/s and the worker projected them at {prof.get('worker_rate', 0):,.0f} events/s.",
            "",
            "API process during the append run:",
            "",
            *fmt_profile(prof.get("api", {})),
            "",
            "Worker process while it caught up:",
            "",
            *fmt_profile(prof.get("worker", {})),
            "",
        ]
    lines += [
        "## How each figure is taken",
        "",
        f"1. The worker is stopped. wrk ({a.append_seconds} s, 2 threads, {a.connections} connections) sends a mix of "
        + ", ".join(f"{v}% {k}" for k, v in MIX.items())
        + " with every seeded user's bearer token (minted with the server's secret). Events appended = growth of the "
        f"topic's end offsets during the wrk run (idempotent no-ops append nothing). Limit: `{res['pp_command']}` on a scratch topic "
        f"of {a.partitions} partitions, right after, on the same broker.",
        "2. The events appended in 1 are the backlog. One `photostream worker` is started; the clock starts when Faust "
        "logs `Worker: Ready` (start-up shown apart) and stops when every `<projection>#<lane>` checkpoint in "
        "`projection_checkpoints` has reached the topic's end offset of every source partition. Limit: the log is replayed "
        "through the same projectors into a SQLite shadow, which yields the writes (and reads) the projectors produce for "
        f"exactly that backlog; the writes are bound to a scratch keyspace of the same tables and sent as single statements "
        f"with `execute_concurrent` at concurrency {a.raw_concurrency} from one Python process.",
        f"3. The worker runs. wrk with a per-request pause keeps a steady background mix. {a.probes} asyncio probes each POST a post "
        f"(an author from the graph, a photo uploaded beforehand) and poll one of the author's followers' `GET /v1/feed?limit=10` every "
        f"{a.poll_ms} ms without a consistency token until the post id is there; freshness = the answer that shows it minus the POST's answer.",
    ]
    return "\n".join(lines) + "\n"


def observations(b: Bench, s: dict[str, Any]) -> list[str]:
    """Plain statements read off this run's numbers (no judgement baked in)."""
    res = b.results
    runs = counted(res["runs"])
    out = []
    cpu = {k: median([r["append_cpu"].get(k, 0) for r in runs]) for k in ("api", "cassandra", "kafka", "machine")}
    out.append(
        f"- Appending: median CPU over the wrk runs, in % of one core: API process {cpu['api']:.0f}%, Cassandra "
        f"{cpu['cassandra']:.0f}%, Kafka {cpu['kafka']:.0f}%, whole machine {cpu['machine']:.0f}% of {res['machine']['cores'] * 100}%. "
        f"Kafka alone takes {s['pp']:,.0f} records/s of this size on the same box."
    )
    catches = [r["catch"] for r in runs]
    wcpu = median([c.cpu.get("worker", 0) for c in catches])
    out.append(
        f"- Projecting: the worker used {wcpu:.0f}% of one core (median), Cassandra {median([c.cpu.get('cassandra', 0) for c in catches]):.0f}%, "
        f"the machine {median([c.cpu.get('machine', 0) for c in catches]):.0f}%. The router had forwarded the whole backlog after "
        f"{median([c.router for c in catches]):.1f} s of {median([c.ready_to_done for c in catches]):.1f} s (medians)."
    )
    last = runs[-1]
    idle = [n for n, w in last["capture"]["writes_by_projector"].items() if w == 0]
    idle += [n for n in last["catch"].per_projection if n not in last["capture"]["writes_by_projector"]]
    if idle:
        t = max(last["catch"].per_projection[n] for n in idle)
        out.append(
            f"- In run {res['runs'].index(last) + 1}, projections with nothing to write for this backlog ({', '.join(sorted(set(idle)))}) "
            f"reached the head {t:.1f} s after ready, {t - last['catch'].router:+.1f} s after the router was done; the busiest "
            f"reached it at {last['catch'].ready_to_done:.1f} s."
        )
    cap = last["capture"]
    out.append(
        f"- Per event the projectors issue {cap['reads'] / max(cap['events'], 1):.1f} reads and {cap['writes'] / max(cap['events'], 1):.1f} "
        f"writes; replayed raw at concurrency {b.args.raw_concurrency} the reads alone take "
        f"{median([r['raw']['reads_s'] for r in runs]):.1f} s and the writes {median([r['raw']['single_s'] for r in runs]):.1f} s "
        f"per backlog, against {median([c.ready_to_done for c in catches]):.1f} s for the worker."
    )
    fr = res["freshness"]
    stages = fr["stages"]
    if stages:
        share = {k: pct(v, 50) for k, v in stages.items()}
        out.append(
            "- Freshness under load, p50 by stage: " + "; ".join(f"{k} {v:.0f} ms" for k, v in share.items())
            + f". The home_timeline handler alone: {fr['fanout']['reads']:.0f} reads one after the other for "
            f"{fr['fanout']['followers']:.0f} followers, {fr['fanout']['ms']:.0f} ms."
        )
    return out


def print_table(b: Bench, s: dict[str, Any]) -> None:
    res = b.results
    rows = [
        ("events appended/s via API", f"{s['api']:,.0f}", f"Kafka ProducerPerformance {s['pp']:,.0f} rec/s", f"{s['api'] / s['pp']:.2%}"),
        ("events/s one worker projects", f"{s['worker']:,.0f}", f"raw driver writes, same rows {s['raw']:,.0f} ev/s", f"{s['worker'] / s['raw']:.2f}"),
        ("post->feed p50 / p99 ms", f"{s['fresh_p50']:.0f} / {s['fresh_p99']:.0f}", f"POST /v1/posts {s['post_p50']:.0f} / {s['post_p99']:.0f} ms",
         f"x{s['fresh_p50'] / s['post_p50']:.1f} / x{s['fresh_p99'] / s['post_p99']:.1f}"),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows + [("figure", "measured", "limit (same run)", "ratio")]) for i in range(4)]
    print()
    print(f"seeding: {res['seed']['report']} ({res['seed']['seconds']:.0f}s wall)")
    for r in [("figure", "measured", "limit (same run)", "ratio"), tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print()


def plot(b: Bench, s: dict[str, Any], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    fr = b.results["freshness"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))

    def bars(ax: Any, labels: list[str], values: list[float], runs: list[list[float]], colors: list[str], title: str, log: bool) -> None:
        xs = range(len(labels))
        ax.bar(xs, values, color=colors)
        for x, pts in zip(xs, runs):
            ax.scatter([x] * len(pts), pts, color="black", s=12, zorder=3)
        for x, v in zip(xs, values):
            ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=9)
        ax.set_xticks(list(xs), labels, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)

    bars(
        axes[0], ["API (wrk mix)\nevents/s", "Kafka ProducerPerf\nrecords/s"], [s["api"], s["pp"]], [s["api_runs"], s["pp_runs"]],
        ["tab:blue", "tab:gray"], f"1. append: {s['api'] / s['pp']:.2%} of the limit (log scale)", True,
    )  # fmt: skip
    bars(
        axes[1], ["one worker\nevents/s", "raw writes\nsame rows", "raw, adapter's\nbatches"],
        [s["worker"], s["raw"], s["raw_grouped"]], [s["worker_runs"], s["raw_runs"], s["raw_grouped_runs"]],
        ["tab:blue", "tab:gray", "tab:olive"], f"2. project: {s['worker'] / s['raw']:.2f} of the limit", False,
    )  # fmt: skip
    ax = axes[2]
    series = [
        (fr["post_ms"], "POST /v1/posts (under load)", "tab:gray", "-"),
        (fr["seen_ms"], "post -> follower's feed (under load)", "tab:blue", "-"),
    ]
    if fr.get("idle"):
        series.append((fr["idle"]["seen_ms"], "post -> follower's feed (no background load)", "tab:blue", ":"))
    for values, label, color, style in series:
        ordered = sorted(values)
        if ordered:
            ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label, color=color, linestyle=style)
    ax.axhline(0.5, color="lightgray", lw=0.8)
    ax.axhline(0.99, color="lightgray", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction")
    ax.legend(fontsize=8)
    ax.set_title(f"3. freshness p50/p99 {s['fresh_p50']:.0f}/{s['fresh_p99']:.0f} ms vs POST {s['post_p50']:.0f}/{s['post_p99']:.0f} ms", fontsize=10)
    m = b.results["machine"]
    fig.suptitle(f"photostream distributed, Reed98, {m['cores']} cores, {dt.date.today().isoformat()}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/distributed.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 150 accounts, 1 run, 10 s of load, 20 freshness posts "
                   "(any flag given explicitly wins); results go to distributed-<date>-quick.md/.png")  # fmt: skip
    g = p.add_argument_group("data")
    g.add_argument("--graph", type=Path, default=DEFAULT_GRAPH, help="edge list to seed (default: %(default)s)")
    g.add_argument("--posts-per-account", type=int, default=1, help="generated photo posts per seeded account (default: 1)")
    g.add_argument("--max-accounts", type=int, default=None, help="seed only the first N nodes (default: all; --quick: 150)")
    g = p.add_argument_group("runs")
    g.add_argument("--runs", type=int, default=None, help="runs of figures 1 and 2; medians are reported (default 3, --quick 1)")
    g.add_argument("--append-seconds", type=int, default=None, help="length of each wrk append run, which also sets the "
                   "backlog of figure 2 (default 60, --quick 10)")  # fmt: skip
    g.add_argument("--connections", type=int, default=32, help="wrk connections for the append runs (default 32)")
    g.add_argument("--pp-records", type=int, default=None, help="records ProducerPerformance sends (default 500000, --quick 100000)")
    g.add_argument("--record-size", type=int, default=0, help="ProducerPerformance record size in bytes (default: the mean size of the seeded events)")
    g.add_argument("--worker-threads", type=int, default=16, help="`photostream worker --threads` (default 16, the worker's own default)")
    g.add_argument("--stall-seconds", type=float, default=90.0, help="a worker whose checkpoints do not move for this long "
                   "is reported as stalled and restarted; such a run is not counted (default 90)")  # fmt: skip
    g.add_argument("--no-profile", dest="profile", action="store_false", help="skip the extra, uncounted run that samples "
                   "the API and the worker with py-spy (done only when py-spy is installed)")  # fmt: skip
    g.add_argument("--raw-concurrency", type=int, default=100, help="requests in flight for the raw cassandra-driver limit (default 100)")
    g = p.add_argument_group("freshness")
    g.add_argument("--freshness-posts", type=int, default=None, help="posts probed for freshness (default 200, --quick 20)")
    g.add_argument("--idle-posts", type=int, default=None, help="posts probed first without background load, as a reference "
                   "(default 50, --quick 10; 0 skips)")  # fmt: skip
    g.add_argument("--probes", type=int, default=2, help="concurrent probes (each: post, then poll a follower's feed) (default 2)")
    g.add_argument("--poll-ms", type=float, default=5.0, help="pause between feed polls in ms (default 5)")
    g.add_argument("--freshness-timeout", type=float, default=30.0, help="give up on a post after this many seconds (default 30)")
    g.add_argument("--background-rate", type=float, default=0.0, help="target requests/s of the background mix during freshness "
                   "(default: half of the smaller of the measured API and worker rates)")  # fmt: skip
    g.add_argument("--background-connections", type=int, default=8, help="wrk connections of the background load (default 8)")
    g = p.add_argument_group("services and scratch names (the keyspace also has a scratch twin, bench_NAME_raw)")
    add_stack_arguments(g, "dist")
    g.add_argument("--out-dir", type=Path, default=BENCH / "results", help="where the .md and .png go (default bench/results)")
    args = p.parse_args(argv)
    for name, (full, quick) in PROFILES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.graph = args.graph.resolve()
    if not args.graph.exists():
        p.error(f"--graph {args.graph} does not exist")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    if shutil.which("java") is None:
        sys.exit("java is not installed (ProducerPerformance needs it)")
    bench = Bench(args)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        bench.run()
    finally:
        bench.cleanup()
    s = summarize(bench)
    print_table(bench, s)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"distributed-{dt.date.today().isoformat()}{'-quick' if args.quick else ''}"
    md = args.out_dir / f"{stem}.md"
    png = args.out_dir / f"{stem}.png"
    text = report_markdown(bench, s)
    if plot(bench, s, png):
        text = text.replace("\n## Figures", f"\n![figures]({png.name})\n\n## Figures", 1)
    md.write_text(text)
    raw = _jsonable(bench.results)
    raw["freshness"].pop("get_ms", None)  # thousands of polls; their percentiles are in the .md
    (args.out_dir / f"{stem}.json").write_text(json.dumps(raw, indent=1, default=str))
    say(f"wrote {md}, {png} ({bench.results['seconds'] / 60:.1f} min in all)")


def _jsonable(value: Any) -> Any:
    if isinstance(value, CatchUp):
        return {**value.__dict__, "rate": value.rate, "wall_rate": value.wall_rate}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    main()
