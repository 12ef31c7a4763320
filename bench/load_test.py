"""Load test: a realistic request mix held at the highest rate the box sustains.

On a private photostream (distributed by default: one `photostream serve` and one
`photostream worker` on a fresh topic, keyspace and bucket of the shared Kafka,
Cassandra and MinIO; `--backend embedded`: one `photostream serve` on SQLite):

 1. seeds the Reed98 graph (`photostream seed`, one photo post per account), waits
    until it is projected, reads every account and post through the API (the baseline
    of the convergence check), and uploads one photo for --posters accounts (their
    posts during the load reuse it; uploads are not part of the timed mix);
 2. STEP-UP: wrk (-t N -c N, one connection per thread) sends the mix on a fixed
    schedule (wrk2-like: a request is due every N/RATE s on each connection and its
    latency counts from when it was due) at increasing rates for --step-seconds each.
    A rate is sustained when every request was answered, none with a 5xx, at >= 95%
    of the target, with the corrected p99 under --p99-ms and the projections at most
    --max-lag-s behind at the end. The highest sustained rate is held next;
 3. HOLD: the same mix at that rate for --minutes, sampling every --sample-seconds the
    memory (RSS) and CPU of the API, the worker, Kafka, Cassandra and MinIO (pids from
    the stack's pid files, as `photostream stack status` shows them) and the
    projections' lag (GET /v1/projections);
 4. CONVERGENCE: once the load stops, every account's followers/following/posts
    counts and every touched post's like and comment counts are read through the API
    and compared with what the log of acknowledged requests says they must be
    (baseline + every answered like/unlike, follow/unfollow, comment and post).

The mix (weights in %, see MIX): home feed reads dominate, then profile, post and
comment reads and notifications; writes are likes/unlikes, comments, follows/unfollows
and posts. Each wrk thread acts as its own slice of the accounts, so one account's
writes are sequential and their acknowledged order is known.

The load comes from one address on behalf of hundreds of accounts, so the per-address
rate limits are switched off (PHOTOSTREAM_RATE_LIMITS address "0/1"); the per-account
limits stay at their defaults.

Output: a table on stdout, bench/results/load-<date>.md, .json and .png (the plot needs
matplotlib, not a project dependency).

    python bench/load_test.py                                # full: Reed98, step-up, 10 min hold
    python bench/load_test.py --minutes 0.5 --max-accounts 150 --step-seconds 8   # smoke (~4 min)
    python bench/load_test.py --backend embedded --minutes 2
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402

from harness import (  # noqa: E402
    DEFAULT_GRAPH, NO_ADDRESS_LIMITS, Deployment, pyplot, add_stack_arguments, cpu_seconds, fmt_load, machine, machine_busy, pct, rss_mib, say,
)

# The request mix, weights in %. Reads are three quarters (the home feed alone 40%),
# writes a quarter: an active social app rather than a read-only one, so the worker works.
MIX: dict[str, int] = {
    "feed": 40,  # GET /v1/feed?limit=20
    "profile": 7,  # GET /v1/accounts/{u}
    "profile_posts": 7,  # GET /v1/accounts/{u}/posts?limit=12
    "post": 8,  # GET /v1/posts/{id}
    "comments": 5,  # GET /v1/posts/{id}/comments?limit=20
    "notifications": 8,  # GET /v1/notifications?limit=20
    "like": 10,  # POST /v1/posts/{id}/like (a post the account has not liked)
    "unlike": 3,  # DELETE /v1/posts/{id}/like (one it liked)
    "comment": 4,  # POST /v1/posts/{id}/comments
    "follow": 3,  # POST /v1/accounts/{u}/follow (one it does not follow)
    "unfollow": 2,  # DELETE /v1/accounts/{u}/follow (one it follows, seeded friendships too)
    "create_post": 3,  # POST /v1/posts with a photo uploaded before the load
}
WRITES = {"like", "unlike", "comment", "follow", "unfollow", "create_post"}
ROUTES = {
    "feed": "GET /v1/feed", "profile": "GET /v1/accounts/{u}", "profile_posts": "GET /v1/accounts/{u}/posts",
    "post": "GET /v1/posts/{id}", "comments": "GET /v1/posts/{id}/comments", "notifications": "GET /v1/notifications",
    "like": "POST /v1/posts/{id}/like", "unlike": "DELETE /v1/posts/{id}/like", "comment": "POST /v1/posts/{id}/comments",
    "follow": "POST /v1/accounts/{u}/follow", "unfollow": "DELETE /v1/accounts/{u}/follow", "create_post": "POST /v1/posts",
}  # fmt: skip
LUA = BENCH / "load_test.lua"


# ----- the request log -------------------------------------------------------------------


@dataclass
class Answer:
    t: float  # monotonic seconds, when the answer arrived
    kind: str
    status: int
    ms: float  # service latency: sent -> answered
    corrected_ms: float  # due -> answered (the schedule's latency)
    detail: str


@dataclass
class RunLog:
    label: str
    target: float  # requests/s asked for
    seconds: float
    started: float  # monotonic
    answers: list[Answer] = field(default_factory=list)
    unanswered: list[tuple[str, str]] = field(default_factory=list)  # writes sent and never answered: (kind, detail)
    lost: int = 0  # requests (reads too) given up mid-run (a timeout or a dropped connection), not in flight at the end
    wrk: dict[str, Any] = field(default_factory=dict)

    def rate(self) -> float:
        return len(self.answers) / self.seconds if self.seconds else 0.0

    def classes(self, kinds: Iterable[str] | None = None) -> Counter:
        wanted = set(kinds) if kinds is not None else None
        out: Counter = Counter()
        for a in self.answers:
            if wanted is None or a.kind in wanted:
                out[f"{a.status // 100}xx"] += 1
        return out

    def statuses(self) -> Counter:
        return Counter((a.kind, a.status) for a in self.answers)


def read_logs(folder: Path, label: str) -> tuple[list[Answer], list[tuple[str, str]], int]:
    """The answers (by time), the writes never answered (given up mid-run or in flight
    when wrk stopped: their outcome is unknown), and how many requests, reads included,
    were given up mid-run."""
    answers: list[Answer] = []
    lost: list[tuple[str, str]] = []
    gave_up = 0
    for path in sorted(folder.glob(f"log-{label}-*.tsv")):
        open_write: tuple[str, str] | None = None
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if parts[0] == "S":
                open_write = (parts[2], parts[3] if len(parts) > 3 else "")
            elif parts[0] == "L":  # given up mid-run: a read or a write
                gave_up += 1
                if parts[2] in WRITES:
                    lost.append((parts[2], parts[3] if len(parts) > 3 else ""))
                    open_write = None
            elif parts[0] == "R" and len(parts) >= 6:
                kind = parts[2]
                answers.append(Answer(float(parts[1]) / 1e6, kind, int(parts[3]), float(parts[4]) / 1000, float(parts[5]) / 1000, parts[6] if len(parts) > 6 else ""))
                if kind in WRITES:
                    open_write = None
        if open_write is not None:  # in flight when wrk stopped
            lost.append(open_write)
    answers.sort(key=lambda a: a.t)
    return answers, lost, gave_up


def parse_wrk_summary(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    return out


def latency(answers: list[Answer], corrected: bool = False) -> dict[str, float]:
    values = [a.corrected_ms if corrected else a.ms for a in answers]
    if not values:
        return {"n": 0, "p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99), "max": max(values)}


# ----- what the acknowledged requests say the read models must hold ------------------------------


@dataclass
class Ledger:
    """The state the acknowledged writes lead to, applied run after run in answer order
    (one account's writes are sequential on one connection, so that order is theirs)."""

    follows: set[tuple[int, int]]
    initial_follows: set[tuple[int, int]]
    likes: set[tuple[int, str]] = field(default_factory=set)
    comments: Counter = field(default_factory=Counter)  # post id -> comments acknowledged
    posts: Counter = field(default_factory=Counter)  # author index -> posts acknowledged
    new_posts: dict[str, int] = field(default_factory=dict)  # post id -> author index
    uncertain_follows: set[tuple[int, int]] = field(default_factory=set)
    uncertain_likes: set[tuple[int, str]] = field(default_factory=set)
    uncertain_comments: Counter = field(default_factory=Counter)
    uncertain_posts: Counter = field(default_factory=Counter)
    acknowledged: Counter = field(default_factory=Counter)

    def apply(self, run: RunLog) -> None:
        for a in run.answers:
            if a.kind not in WRITES:
                continue
            if 200 <= a.status < 300:
                self.acknowledged[a.kind] += 1
                self._apply(a.kind, a.detail)
            elif a.status >= 500:  # may or may not have been applied
                self._uncertain(a.kind, a.detail)
        for kind, detail in run.unanswered:
            self._uncertain(kind, detail)

    def _apply(self, kind: str, detail: str) -> None:
        x, _, y = detail.partition(" ")
        if kind == "like":
            self.likes.add((int(x), y))
        elif kind == "unlike":
            self.likes.discard((int(x), y))
        elif kind == "follow":
            self.follows.add((int(x), int(y)))
        elif kind == "unfollow":
            self.follows.discard((int(x), int(y)))
        elif kind == "comment":
            self.comments[y] += 1
        elif kind == "create_post":
            self.posts[int(x)] += 1
            if y.isdigit():
                self.new_posts[y] = int(x)

    def _uncertain(self, kind: str, detail: str) -> None:
        x, _, y = detail.partition(" ")
        if kind in ("like", "unlike"):
            self.uncertain_likes.add((int(x), y))
        elif kind in ("follow", "unfollow"):
            self.uncertain_follows.add((int(x), int(y)))
        elif kind == "comment":
            self.uncertain_comments[y] += 1
        elif kind == "create_post":
            self.uncertain_posts[int(x)] += 1


# ----- the bench ---------------------------------------------------------------------------


class LoadTest(Deployment):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args, extra_env={"PHOTOSTREAM_RATE_LIMITS": NO_ADDRESS_LIMITS})
        self.env.pop("PHOTOSTREAM_RATE_LIMIT_SCALE", None)  # the per-account limits as deployed
        self.results: dict[str, Any] = {"steps": [], "backend": self.backend}
        self.http = httpx.Client(timeout=60)
        self.wrk_dir = self.data_dir / "wrk"
        self.runs: list[RunLog] = []

    # ----- setup ---------------------------------------------------------------------------

    def projections(self) -> tuple[int, float]:
        """(the slowest projection's lag in events, its lag in seconds) or (-1, nan)."""
        try:
            items = self.http.get(f"{self.url}/v1/projections", timeout=10).json()["items"]
        except (httpx.HTTPError, ValueError, KeyError):
            return -1, float("nan")
        return max(i["lag_events"] for i in items), max((i["lag_seconds"] or 0.0) for i in items)

    def wait_projected(self, timeout: float, quiet: bool = False) -> float:
        """Wait until no projection lags; returns the seconds it took (nan on timeout)."""
        started = last = time.monotonic()
        while time.monotonic() - started < timeout:
            lag, _ = self.projections()
            if lag == 0:
                return time.monotonic() - started
            if not quiet and time.monotonic() - last > 15:
                say(f"  ... projections {lag:,} events behind")
                last = time.monotonic()
            time.sleep(0.5)
        return float("nan")

    def setup(self) -> None:
        from api.seed import generated_photo, read_edges

        a = self.args
        self.prepare()
        seeded = self.seed_graph(a.graph, a.posts_per_account, a.max_accounts)
        say(f"  {seeded['report']} ({seeded['seconds']:.0f} s wall)")
        self.results["seed"] = seeded
        self.start_serve()
        if self.distributed:
            self.start_worker()
        waited = self.wait_projected(3600)
        say(f"  the seed is projected ({waited:.0f} s after the server started)")
        self.results["seed"]["projected_after_s"] = waited
        nodes, edges = read_edges(a.graph, a.max_accounts)
        self.names = [f"user{n}" for n in nodes]
        index = {n: i + 1 for i, n in enumerate(nodes)}  # 1-based, as in the Lua script
        initial = {(index[x], index[y]) for x, y in edges} | {(index[y], index[x]) for x, y in edges}
        say(f"baseline: every account and its posts through the API ({len(nodes)} accounts)")
        with ThreadPoolExecutor(4) as pool:
            accounts = list(pool.map(self.account, self.names))
            posts = list(pool.map(lambda n: self.get(f"/v1/accounts/{n}/posts?limit=100")["items"], self.names))
        self.account_ids = [acc["id"] for acc in accounts]
        self.base_accounts = {i + 1: acc for i, acc in enumerate(accounts)}
        self.base_posts = {p["id"]: p for page in posts for p in page}
        self.post_author = {p["id"]: i + 1 for i, page in enumerate(posts) for p in page}
        self.tokens = self.tokens_for(self.account_ids)
        self.ledger = Ledger(follows=set(initial), initial_follows=initial)
        rng = random.Random(9)
        posters = sorted(rng.sample(range(1, len(nodes) + 1), min(a.posters, len(nodes))))
        say(f"uploading one photo for each of {len(posters)} posting accounts (not timed)")
        started = time.perf_counter()
        media: dict[int, str] = {}

        def upload(i: int) -> None:
            r = self.http.post(
                f"{self.url}/v1/media", headers=self.auth(i), files={"file": ("p.jpg", generated_photo(50_000 + i, size=480), "image/jpeg")}
            )
            r.raise_for_status()
            media[i] = r.json()["id"]

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(upload, posters))
        self.results["uploads"] = {"count": len(media), "seconds": time.perf_counter() - started}
        self.wrk_dir.mkdir(exist_ok=True)
        (self.wrk_dir / "accounts.txt").write_text("".join(f"{n} {t}\n" for n, t in zip(self.names, self.tokens)))
        (self.wrk_dir / "media.txt").write_text("".join(f"{i} {m}\n" for i, m in sorted(media.items())))
        self.write_state()
        self.results["data"] = {
            "accounts": len(nodes), "follows": len(initial), "posts": len(self.base_posts), "posters": len(media),
        }  # fmt: skip
        self.wait_projected(300, quiet=True)

    def auth(self, i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[i - 1]}"}

    def get(self, path: str) -> Any:
        for attempt in range(5):
            r = self.http.get(f"{self.url}{path}")
            if r.status_code < 500:
                r.raise_for_status()
                return r.json()
            time.sleep(1 + attempt)
        r.raise_for_status()

    def account(self, name: str) -> dict[str, Any]:
        return self.get(f"/v1/accounts/{name}")

    def write_state(self) -> None:
        """The acknowledged state so far, for the next wrk run's threads to start from."""
        led = self.ledger
        posts = list(self.base_posts) + list(led.new_posts)
        (self.wrk_dir / "posts.txt").write_text("".join(p + "\n" for p in posts))
        (self.wrk_dir / "follows.txt").write_text("".join(f"{a} {b}\n" for a, b in sorted(led.follows)))
        (self.wrk_dir / "likes.txt").write_text("".join(f"{a} {p}\n" for a, p in sorted(led.likes)))

    # ----- running wrk ---------------------------------------------------------------------

    def script(self, label: str, rate: float) -> Path:
        text = LUA.read_text()
        for key, value in {
            "@DATA@": str(self.wrk_dir), "@RUN@": label, "@RATE@": f"{rate:.3f}", "@THREADS@": str(self.args.connections),
            "@MIX@": ", ".join(f'{{"{k}", {w}}}' for k, w in MIX.items()),
        }.items():  # fmt: skip
            text = text.replace(key, value)
        path = self.wrk_dir / f"mix-{label}.lua"
        path.write_text(text)
        return path

    def run_wrk(self, label: str, rate: float, seconds: float, sampler: Sampler | None = None) -> RunLog:
        c = self.args.connections
        argv = ["wrk", f"-t{c}", f"-c{c}", f"-d{max(1, round(seconds))}s", "--timeout", f"{self.args.timeout_s:.0f}s",
                "--latency", "-s", str(self.script(label, rate)), self.url]  # fmt: skip
        started = time.monotonic()
        out = open(self.wrk_dir / f"wrk-{label}.out", "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.procs[f"wrk-{label}"] = proc
        try:
            proc.wait(timeout=seconds + 120)
        finally:
            if proc.poll() is None:  # interrupted: stop it here, cleanup no longer sees it
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
            self.procs.pop(f"wrk-{label}", None)
            out.close()
        wall = time.monotonic() - started
        answers, unanswered, lost = read_logs(self.wrk_dir, label)
        run = RunLog(label, rate, wall, started, answers, unanswered, lost, parse_wrk_summary((self.wrk_dir / f"wrk-{label}.out").read_text()))
        if answers:  # the rate over the answers' own span (wrk's start-up and shutdown are not load)
            run.seconds = max(answers[-1].t - max(started, answers[0].t - 0.001), 1e-3)
        self.ledger.apply(run)
        self.write_state()
        self.runs.append(run)
        self.results.setdefault("wrk_commands", []).append(shlex.join(argv).replace(str(self.wrk_dir), "<wrk dir>"))
        return run

    # ----- step-up ---------------------------------------------------------------------------

    def step_up(self) -> float:
        a = self.args
        best = 0.0
        for number, rate in enumerate(a.rates, 1):
            load = os.getloadavg()
            run = self.run_wrk(f"step{number}", rate, a.step_seconds)
            lag, lag_s = self.projections()
            corrected = latency(run.answers, corrected=True)
            service = latency(run.answers)
            five = run.classes()["5xx"]
            reasons = []
            if five:
                reasons.append(f"{five} 5xx")
            if run.lost:
                reasons.append(f"{run.lost} requests never answered")
            if run.rate() < 0.95 * rate:
                reasons.append(f"{run.rate():.0f} req/s < 95% of {rate:.0f}")
            if not corrected["p99"] <= a.p99_ms:
                reasons.append(f"corrected p99 {corrected['p99']:.0f} ms > {a.p99_ms:.0f}")
            # lag_seconds is the time since the last applied event: on a lane with sparse
            # events it is large while only one event waits. The bound is in events: what
            # the mix writes in --max-lag-s (a quarter of its requests are writes).
            allowed = max(20.0, 0.25 * rate * a.max_lag_s)
            if lag > allowed:
                reasons.append(f"projections {lag} events behind (> {allowed:.0f})")
            ok = not reasons
            self.results["steps"].append({
                "target": rate, "achieved": run.rate(), "answers": len(run.answers), "classes": dict(run.classes()),
                "unanswered": len(run.unanswered), "lost": run.lost, "latency": service, "corrected": corrected, "lag_events": lag,
                "lag_seconds": lag_s, "load": load, "sustained": ok, "why_not": reasons,
            })  # fmt: skip
            say(
                f"  step {number}: {rate:.0f} req/s asked, {run.rate():.0f} answered; p50 {service['p50']:.0f} ms, "
                f"p99 {service['p99']:.0f} ms (corrected {corrected['p99']:.0f}); {dict(run.classes())}; "
                f"lag {lag} events / {lag_s:.1f} s -> {'sustained' if ok else 'NOT sustained: ' + ', '.join(reasons)}"
            )
            if not ok:
                break
            best = rate
            self.wait_projected(60, quiet=True)
        return best

    # ----- the hold ---------------------------------------------------------------------------

    def hold(self, rate: float) -> None:
        a = self.args
        self.wait_projected(120, quiet=True)
        sampler = Sampler(self, a.sample_seconds)
        self.results["load_at_hold_start"] = os.getloadavg()
        sampler.start()
        say(f"hold: {rate:.0f} req/s for {a.minutes:g} min, {a.connections} connections; sampling every {a.sample_seconds:g} s")
        try:
            run = self.run_wrk("hold", rate, a.minutes * 60, sampler)
        finally:
            sampler.stop()
        self.results["load_at_hold_end"] = os.getloadavg()
        self.hold_run = run
        self.samples = sampler.samples
        say(f"  {len(run.answers):,} answers in {run.seconds:.0f} s = {run.rate():.1f} req/s; {dict(run.classes())}; "
            f"{run.lost} requests never answered; {len(run.unanswered)} writes of unknown outcome (in flight at the end or never answered)")  # fmt: skip
        started = time.monotonic()
        drained = self.wait_projected(600)
        self.results["drain_s"] = drained
        say(f"  projections caught up {drained:.1f} s after the load stopped" if drained == drained else "  !! projections still behind after 600 s")
        self.results["after_drain"] = {name: rss_mib(pid) for name, pid in self.pids().items()}
        del started

    # ----- convergence ---------------------------------------------------------------------------

    def convergence(self) -> dict[str, Any]:
        """Counts through the API against the ledger; mismatches are read again for up to
        --converge-s (a read model may still be applying the last events)."""
        led = self.ledger
        n = len(self.names)
        want_followers, want_following, slack_acc = Counter(), Counter(), Counter()
        for i in range(1, n + 1):
            want_followers[i] = self.base_accounts[i]["followers_count"]
            want_following[i] = self.base_accounts[i]["following_count"]
        for x, y in led.follows - led.initial_follows:
            want_following[x] += 1
            want_followers[y] += 1
        for x, y in led.initial_follows - led.follows:
            want_following[x] -= 1
            want_followers[y] -= 1
        for x, y in led.uncertain_follows:
            slack_acc[x] += 1
            slack_acc[y] += 1
        want_posts = {i: self.base_accounts[i]["posts_count"] + led.posts[i] for i in range(1, n + 1)}
        touched = {p for _, p in led.likes} | {p for _, p in led.uncertain_likes} | set(led.comments) | set(led.uncertain_comments) | set(led.new_posts)
        likes_of = Counter(p for _, p in led.likes)
        uncertain_likes_of = Counter(p for _, p in led.uncertain_likes)
        want_post = {
            p: (self.base_posts[p]["like_count"] if p in self.base_posts else 0) + likes_of[p]
            for p in touched
        }
        want_comments = {p: (self.base_posts[p]["comment_count"] if p in self.base_posts else 0) + led.comments[p] for p in touched}

        def check_account(i: int) -> list[str]:
            acc = self.account(self.names[i - 1])
            out = []
            for fld, want, slack in (("followers_count", want_followers[i], slack_acc[i]), ("following_count", want_following[i], slack_acc[i]),
                                     ("posts_count", want_posts[i], led.uncertain_posts[i])):  # fmt: skip
                if not want <= acc[fld] <= want + slack and not want - slack <= acc[fld] <= want:
                    out.append(f"{self.names[i - 1]} {fld} {acc[fld]} != {want}" + (f" (+-{slack} uncertain)" if slack else ""))
            return out

        def check_post(p: str) -> list[str]:
            post = self.get(f"/v1/posts/{p}")
            out = []
            if abs(post["like_count"] - want_post[p]) > uncertain_likes_of[p]:
                out.append(f"post {p} like_count {post['like_count']} != {want_post[p]}")
            c = post["comment_count"] - want_comments[p]
            if not 0 <= c <= led.uncertain_comments[p]:
                out.append(f"post {p} comment_count {post['comment_count']} != {want_comments[p]}")
            return out

        say(f"convergence: {n} accounts and {len(touched):,} touched posts through the API against the acknowledged writes")
        started = time.monotonic()
        pending_acc, pending_posts = list(range(1, n + 1)), sorted(touched)
        rounds = 0
        while True:
            rounds += 1
            with ThreadPoolExecutor(4) as pool:
                acc_bad = {i: m for i, m in zip(pending_acc, pool.map(check_account, pending_acc)) if m}
                post_bad = {p: m for p, m in zip(pending_posts, pool.map(check_post, pending_posts)) if m}
            pending_acc, pending_posts = sorted(acc_bad), sorted(post_bad)
            if not (acc_bad or post_bad) or time.monotonic() - started > self.args.converge_s:
                break
            time.sleep(3)
        mismatches = [m for ms in list(acc_bad.values()) + list(post_bad.values()) for m in ms]
        result = {
            "accounts_checked": n, "posts_checked": len(touched), "rounds": rounds, "seconds": time.monotonic() - started,
            "mismatches": mismatches, "acknowledged": dict(led.acknowledged),
            "uncertain": {"follows": len(led.uncertain_follows), "likes": len(led.uncertain_likes),
                          "comments": sum(led.uncertain_comments.values()), "posts": sum(led.uncertain_posts.values())},
            "likes_standing": len(led.likes), "follows_added": len(led.follows - led.initial_follows),
            "follows_removed": len(led.initial_follows - led.follows), "posts_created": len(led.new_posts),
        }  # fmt: skip
        say(f"  {'converged' if not mismatches else f'{len(mismatches)} MISMATCHES'} after {rounds} round(s), {result['seconds']:.1f} s")
        for m in mismatches[:10]:
            say(f"    {m}")
        return result

    # ----- the whole thing -------------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        self.results["machine"] = machine()
        self.results["started"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.results["command"] = shlex.join(["python", "bench/load_test.py", *sys.argv[1:]])
        m = self.results["machine"]
        say(f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, load average at start {fmt_load(m['load'])}")
        self.setup()
        self.wait_for_quiet()
        self.results["load_at_measure"] = os.getloadavg()
        if a.rate:
            rate = a.rate
            say(f"--rate {rate:g}: no step-up")
        else:
            say(f"step-up: {', '.join(f'{r:g}' for r in a.rates)} req/s, {a.step_seconds:g} s each, until one is not sustained")
            rate = self.step_up() or a.rates[0]
        self.results["hold_rate"] = rate
        self.hold(rate)
        self.results["convergence"] = self.convergence()
        self.results["load_at_end"] = os.getloadavg()
        self.results["server_logs"] = self.log_errors()

    def wait_for_quiet(self) -> None:
        """--wait-load: the box is shared; wait (up to --wait-minutes) for the 1-minute load
        average to drop under the bound before measuring. The deployment idles meanwhile."""
        a = self.args
        if not a.wait_load:
            return
        deadline = time.monotonic() + a.wait_minutes * 60
        load = os.getloadavg()[0]
        if load >= a.wait_load:
            say(f"waiting (at most {a.wait_minutes:g} min) for the load average to drop under {a.wait_load:g} (now {load:.2f})")
        while load >= a.wait_load and time.monotonic() < deadline:
            time.sleep(10)
            load = os.getloadavg()[0]
        self.results["waited_for_load"] = {"bound": a.wait_load, "load": os.getloadavg(), "reached": load < a.wait_load}
        say(f"load average {fmt_load(os.getloadavg())}: {'under' if load < a.wait_load else 'still over'} {a.wait_load:g}; measuring")

    def log_errors(self) -> dict[str, Any]:
        """ERROR lines and tracebacks in the server's and the worker's logs (read before
        the data folder goes)."""
        out: dict[str, Any] = {}
        for name in ("serve", "worker"):
            path = self.data_dir / f"{name}.log"
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()
            bad = [l for l in lines if "ERROR" in l or "Traceback" in l or "CRITICAL" in l]
            out[name] = {"lines": len(lines), "errors": len(bad), "first": bad[:5], "warnings": sum(1 for l in lines if "WARNING" in l)}
        return out

    def cleanup(self) -> None:
        self.http.close()
        super().cleanup()


class Sampler:
    """Every `every` seconds: RSS and CPU of each process of the deployment, the
    machine's CPU and load, and the projections' lag."""

    def __init__(self, bench: LoadTest, every: float) -> None:
        self.bench, self.every = bench, every
        self.samples: list[dict[str, Any]] = []
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def take(self, last: dict[str, float], busy: tuple[float, float], t_last: float) -> tuple[dict[str, float], tuple[float, float], float]:
        t = time.monotonic()
        pids = self.bench.pids()
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        now_busy = machine_busy()
        wall = max(t - t_last, 1e-6)
        lag, lag_s = self.bench.projections()
        self.samples.append({
            "t": t, "rss": {name: rss_mib(pid) for name, pid in pids.items()},
            "cpu": {name: 100 * (cpu[name] - last.get(name, cpu[name])) / wall for name in pids} if last else {},
            "machine": 100 * (os.cpu_count() or 1) * (now_busy[0] - busy[0]) / max(now_busy[1] - busy[1], 1) if last else float("nan"),
            "load1": os.getloadavg()[0], "lag_events": lag, "lag_seconds": lag_s,
        })  # fmt: skip
        return cpu, now_busy, t

    def loop(self) -> None:
        last, busy, t = self.take({}, machine_busy(), time.monotonic())
        while not self.halt.wait(self.every):
            last, busy, t = self.take(last, busy, t)
        self.take(last, busy, t)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(timeout=60)


# ----- report --------------------------------------------------------------------------------


def memory_table(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per process: RSS at start and end, min, max, and the least-squares slope over the
    second half of the run in MiB per minute (the first half includes warm-up)."""
    out: dict[str, dict[str, float]] = {}
    names = sorted({n for s in samples for n in s["rss"]}, key=lambda n: ["api", "worker", "kafka", "cassandra", "minio"].index(n) if n in ("api", "worker", "kafka", "cassandra", "minio") else 9)
    for name in names:
        pts = [(s["t"], s["rss"][name]) for s in samples if name in s["rss"] and s["rss"][name] == s["rss"][name]]
        if len(pts) < 2:
            continue
        half = pts[len(pts) // 2:]
        out[name] = {
            "start": pts[0][1], "end": pts[-1][1], "min": min(v for _, v in pts), "max": max(v for _, v in pts),
            "slope_second_half": _slope(half) * 60, "slope_all": _slope(pts) * 60,
            "cpu_mean": _mean([s["cpu"][name] for s in samples if name in s.get("cpu", {})]),
        }  # fmt: skip
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _slope(pts: list[tuple[float, float]]) -> float:
    n = len(pts)
    mx, my = sum(t for t, _ in pts) / n, sum(v for _, v in pts) / n
    den = sum((t - mx) ** 2 for t, _ in pts)
    return sum((t - mx) * (v - my) for t, v in pts) / den if den else 0.0


def grows(m: dict[str, float], minutes: float) -> bool:
    """Growth that would matter: the second half's trend, extended over the whole hold,
    is more than 10% of the process's memory and more than 20 MiB."""
    extra = m["slope_second_half"] * minutes
    return extra > 20 and extra > 0.10 * m["end"]


def kinds_table(run: RunLog) -> list[dict[str, Any]]:
    rows = []
    by_kind: dict[str, list[Answer]] = defaultdict(list)
    for a in run.answers:
        by_kind[a.kind].append(a)
    for kind in MIX:
        answers = by_kind.get(kind, [])
        lat = latency(answers)
        rows.append({
            "kind": kind, "route": ROUTES[kind], "n": len(answers), "share": len(answers) / max(len(run.answers), 1),
            **{k: lat[k] for k in ("p50", "p99", "max")}, "corrected_p99": latency(answers, corrected=True)["p99"],
            "statuses": dict(sorted(Counter(a.status for a in answers).items())),
        })  # fmt: skip
    return rows


def summary(b: LoadTest) -> dict[str, Any]:
    run = b.hold_run
    return {
        "rate_target": run.target, "rate": run.rate(), "answers": len(run.answers), "seconds": run.seconds,
        "latency": latency(run.answers), "corrected": latency(run.answers, corrected=True),
        "feed": latency([a for a in run.answers if a.kind == "feed"]),
        "reads": latency([a for a in run.answers if a.kind not in WRITES]),
        "writes": latency([a for a in run.answers if a.kind in WRITES]),
        "classes": dict(sorted(run.classes().items())), "unanswered": len(run.unanswered), "lost": run.lost, "wrk": run.wrk,
        "kinds": kinds_table(run), "memory": memory_table(b.samples),
        "lag_max_events": max((s["lag_events"] for s in b.samples), default=-1),
        "lag_max_seconds": max((s["lag_seconds"] for s in b.samples if s["lag_seconds"] == s["lag_seconds"]), default=float("nan")),
        "machine_cpu": _mean([s["machine"] for s in b.samples if s["machine"] == s["machine"]]),
    }  # fmt: skip


def four_xx(run: RunLog) -> list[str]:
    found = Counter((a.kind, a.status) for a in run.answers if 400 <= a.status < 500)
    known = {
        ("create_post", 429): "the author's own posting limit (30 per hour per account, the default): the mix posts from a fixed set of accounts",
        ("comment", 429): "the per-account comment limit (60 per 10 min)",
        ("like", 429): "the per-account like limit (300 per 10 min)",
        ("unlike", 429): "the per-account like limit (unlikes share it)",
        ("follow", 429): "the per-account follow limit (120 per 10 min)",
        ("unfollow", 429): "the per-account follow limit (unfollows share it)",
    }
    return [f"{n:,} x {s} on {ROUTES[k]}: {known.get((k, s), 'not expected: see the server log')}" for (k, s), n in found.most_common()]


def print_table(b: LoadTest, s: dict[str, Any]) -> None:
    print()
    print(f"held {s['rate']:.1f} req/s (asked {s['rate_target']:g}) for {s['seconds'] / 60:.1f} min on the {b.backend} backend; "
          f"statuses {s['classes']}; {s['lost']} requests never answered")  # fmt: skip
    print(f"{'kind':<15} {'n':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for r in [{"kind": "ALL", "n": s["answers"], **s["latency"], "statuses": s["classes"]}, *s["kinds"]]:
        print(f"{r['kind']:<15} {r['n']:>7,} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f}  {r['statuses']}")
    print(f"\n{'process':<10} {'RSS start':>10} {'RSS end':>9} {'max':>8} {'trend, 2nd half':>16} {'CPU mean':>9}")
    for name, m in s["memory"].items():
        print(f"{name:<10} {m['start']:>8.0f} M {m['end']:>7.0f} M {m['max']:>6.0f} M {m['slope_second_half']:>+11.2f} M/min {m['cpu_mean']:>8.0f}%")
    c = b.results["convergence"]
    print(f"\nconvergence: {'OK' if not c['mismatches'] else str(len(c['mismatches'])) + ' mismatches'} "
          f"({c['accounts_checked']} accounts, {c['posts_checked']} posts; acknowledged {c['acknowledged']})\n")  # fmt: skip


def report_markdown(b: LoadTest, s: dict[str, Any], png: str | None) -> str:
    res, a = b.results, b.args
    m = res["machine"]
    c = res["convergence"]
    seed = res["seed"]
    minutes = s["seconds"] / 60
    five = s["classes"].get("5xx", 0)
    growing = [n for n, mm in s["memory"].items() if grows(mm, minutes)]
    mismatched = f"; {len(c['mismatches'])} mismatches: " + "; ".join(c["mismatches"][:10]) if c["mismatches"] else ""
    lines = [
        f"# Load test: a realistic mix held for {minutes:.1f} min ({b.backend} backend, {dt.date.today().isoformat()})",
        "",
        f"Command: `{res['command']}` (in the repository; started {res['started']}, "
        f"took {res['seconds'] / 60:.1f} min in all).",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}, Python {m['python']}. "
        f"**Load average at start {fmt_load(m['load'])}**"
        + (f" (then waited for it to drop under {res['waited_for_load']['bound']:g}: "
           f"{'reached' if res['waited_for_load']['reached'] else 'not reached, measured anyway'}, {fmt_load(res['waited_for_load']['load'])})"
           if res.get("waited_for_load") else "")
        + f"; at the start of the measurements {fmt_load(res['load_at_measure'])}, at the start of the hold {fmt_load(res['load_at_hold_start'])}, "
        f"at its end {fmt_load(res['load_at_hold_end'])}. The box is shared: other people's test suites ran beside this, "
        "and Kafka, Cassandra and MinIO are the shared stack (their memory and CPU include everyone's use).",
        "",
        (f"Deployment: one `photostream serve` and one `photostream worker --threads {a.worker_threads}` on a fresh topic "
         f"({a.partitions} partitions), keyspace and bucket of the local Kafka, Cassandra and MinIO."
         if b.distributed else "Deployment: one `photostream serve` (API and projections in one process, SQLite)."),
        f"Data: `{seed['command']}` — {seed['report']}; then one 480x480 photo uploaded for each of "
        f"{res['uploads']['count']} posting accounts before the load ({res['uploads']['seconds']:.0f} s, not timed).",
        "",
        *([f"![load test]({png})", ""] if png else []),
        "## Result",
        "",
        f"- **Rate held: {s['rate']:.1f} requests/s** (asked {s['rate_target']:g} on a fixed schedule, "
        f"{a.connections} connections) for {minutes:.1f} min: {s['answers']:,} answers.",
        f"- **5xx: {five}**; statuses {s['classes']}; requests never answered: {s['lost']} "
        f"(writes in flight when wrk stopped at the end or never answered, outcome unknown: {s['unanswered']}); "
        f"wrk's socket errors {s['wrk'].get('socket_errors', {})}.",
        f"- **Latency** (sent -> answered): p50 {s['latency']['p50']:.1f} ms, p99 {s['latency']['p99']:.1f} ms, "
        f"max {s['latency']['max']:.0f} ms; from when each request was due (coordinated omission corrected): "
        f"p99 {s['corrected']['p99']:.1f} ms, max {s['corrected']['max']:.0f} ms. Feed alone p50 / p99 / max "
        f"{s['feed']['p50']:.1f} / {s['feed']['p99']:.1f} / {s['feed']['max']:.0f} ms; writes "
        f"{s['writes']['p50']:.1f} / {s['writes']['p99']:.1f} / {s['writes']['max']:.0f} ms.",
        f"- **Memory**: {'no process grew' if not growing else 'GROWTH in ' + ', '.join(growing)} "
        "(growth = the second half's trend extended over the hold is over 10% of the process and over 20 MiB); table below.",
        f"- **Projections**: lag during the hold at most {s['lag_max_events']:,} events "
        f"({s['lag_max_seconds']:.1f} s); caught up {res['drain_s']:.1f} s after the load stopped.",
        f"- **Convergence**: {'every' if not c['mismatches'] else 'NOT every'} acknowledged write is counted: "
        f"{c['accounts_checked']} accounts' followers/following/posts counts and {c['posts_checked']:,} touched posts' "
        f"like and comment counts through the API equal the baseline plus the acknowledged writes "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(c['acknowledged'].items()))}; "
        f"{c['likes_standing']:,} likes standing, {c['follows_added']:,} follows added, {c['follows_removed']:,} removed, "
        f"{c['posts_created']:,} posts created){mismatched}.",
        f"  Writes with an unknown outcome (unanswered or 5xx), allowed either way: {c['uncertain']}.",
        "",
        "4xx answers: " + ("none." if not four_xx(b.hold_run) else ""),
        *[f"- {x}" for x in four_xx(b.hold_run)],
        "",
        "Server logs over the whole run: " + "; ".join(
            f"`{n}.log` {v['lines']:,} lines, {v['errors']} ERROR/Traceback lines, {v['warnings']} warnings" for n, v in res.get("server_logs", {}).items()
        ) + ".",
        *[f"    {line[:300]}" for v in res.get("server_logs", {}).values() for line in v["first"]],
        "",
        "## Finding the rate (step-up)",
        "",
        f"Each step ran {a.step_seconds:g} s on the fixed schedule. Sustained = every request answered (but the few in flight "
        "when wrk stops), no 5xx, >= 95% of the "
        f"asked rate answered, corrected p99 <= {a.p99_ms:g} ms, projections at most {a.max_lag_s:g} s of the mix's writes "
        "behind at the end (in events: max(20, rate x 25% x that)).",
        "",
        "| asked req/s | answered req/s | p50 ms | p99 ms | corrected p99 ms | statuses | lag at end (events, s) | load avg | sustained |",
        "|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for st in res["steps"]:
        lines.append(
            f"| {st['target']:g} | {st['achieved']:.1f} | {st['latency']['p50']:.1f} | {st['latency']['p99']:.1f} | {st['corrected']['p99']:.1f} "
            f"| {st['classes']} | {st['lag_events']}, {st['lag_seconds']:.1f} | {st['load'][0]:.1f} | {'yes' if st['sustained'] else 'no: ' + ', '.join(st['why_not'])} |"
        )
    if not res["steps"]:
        lines.append("| (skipped: --rate given) | | | | | | | | |")
    lines += [
        "",
        "## The hold, per request kind",
        "",
        "| kind | route | share | n | p50 ms | p99 ms | max ms | corrected p99 ms | statuses |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        f"| all | | 100% | {s['answers']:,} | {s['latency']['p50']:.1f} | {s['latency']['p99']:.1f} | {s['latency']['max']:.0f} | {s['corrected']['p99']:.1f} | {s['classes']} |",
    ]
    for r in s["kinds"]:
        lines.append(
            f"| {r['kind']} | `{r['route']}` | {r['share']:.1%} | {r['n']:,} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.0f} | {r['corrected_p99']:.1f} | {r['statuses']} |"
        )
    lines += [
        "",
        "## Memory and CPU of every process",
        "",
        f"Sampled every {a.sample_seconds:g} s during the hold (RSS from /proc; CPU in % of one core; the machine averaged "
        f"{s['machine_cpu']:.0f}% of {m['cores'] * 100}%, everyone's processes included). Trend = least-squares slope of the "
        "RSS; the first half includes warm-up (caches, connection pools), so growth is judged on the second half.",
        "",
        "| process | RSS at start MiB | at end MiB | min | max | trend, whole hold MiB/min | trend, 2nd half MiB/min | after the drain MiB | CPU mean | grows? |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, mm in s["memory"].items():
        after = res.get("after_drain", {}).get(name, float("nan"))
        lines.append(
            f"| {name} | {mm['start']:.0f} | {mm['end']:.0f} | {mm['min']:.0f} | {mm['max']:.0f} | {mm['slope_all']:+.2f} | {mm['slope_second_half']:+.2f} "
            f"| {after:.0f} | {mm['cpu_mean']:.0f}% | {'YES' if grows(mm, minutes) else 'no'} |"
        )
    lines += [
        "",
        "## How",
        "",
        "- wrk runs one connection per thread with a Lua script (`bench/load_test.lua`): each thread acts as its own slice of the "
        "accounts, picks a request kind by the weights below, and logs every request with LuaJIT's monotonic clock, so latency is "
        "known per kind and every write's outcome is known (answered with a status, or never answered).",
        "- Mix (weights): " + ", ".join(f"{k} {w}%" for k, w in MIX.items()) + ". Likes go to posts the account has not liked, "
        "unlikes to ones it has, follows to accounts it does not follow, unfollows to ones it does (the seeded friendships too); "
        "posts created during the run are read, liked and commented on too.",
        "- Rate limits: the per-address buckets are off (one load generator speaks for every account); the per-account ones are the defaults.",
        f"- wrk: {', '.join(f'`{w}`' for w in res.get('wrk_commands', [])[-1:])}.",
        "- Convergence: after the hold and once `GET /v1/projections` shows no lag, the ledger of acknowledged writes (applied in "
        "answer order, run after run, starting from the baseline read through the API after seeding) gives each count; mismatches "
        f"are read again for up to {a.converge_s:g} s.",
    ]
    return "\n".join(lines) + "\n"


def plot(b: LoadTest, s: dict[str, Any], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    run = b.hold_run
    t0 = run.started
    fig, axes = plt.subplots(2, 3, figsize=(18, 9))
    samples = b.samples
    ts = [(x["t"] - t0) / 60 for x in samples]
    colors = {"api": "tab:blue", "worker": "tab:orange", "kafka": "tab:green", "cassandra": "tab:red", "minio": "tab:purple"}
    panels = [(axes[0][0], ("api", "worker"), "RSS, our processes")]
    if b.distributed:
        panels.append((axes[0][1], ("kafka", "cassandra", "minio"), "RSS, the shared stack"))
    else:
        ax = axes[0][1]
        ax.plot(ts, [x["lag_events"] for x in samples], color="tab:orange")
        ax.set_title("projection lag, events (slowest projection)")
        ax.set_xlabel("minutes into the hold")
        ax.grid(alpha=0.3)
    for ax, names, title in panels:
        for name in names:
            if any(name in x["rss"] for x in samples):
                ax.plot(ts, [x["rss"].get(name, float("nan")) for x in samples], label=name, color=colors[name])
        ax.set_title(title)
        ax.set_xlabel("minutes into the hold")
        ax.set_ylabel("MiB")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[0][2]
    for name in colors:
        if any(name in x.get("cpu", {}) for x in samples):
            ax.plot(ts, [x.get("cpu", {}).get(name, float("nan")) for x in samples], label=name, color=colors[name])
    ax.plot(ts, [x["machine"] for x in samples], label="machine (everyone)", color="gray", linestyle=":")
    ax.set_title("CPU, % of one core")
    ax.set_xlabel("minutes into the hold")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    # throughput and latency per 10 s window
    window = 10.0
    buckets: dict[int, list[Answer]] = defaultdict(list)
    for a in run.answers:
        buckets[int((a.t - t0) // window)].append(a)
    keys = sorted(buckets)
    end = run.answers[-1].t - t0 if run.answers else 0.0
    span = {k: max(min(window, end - k * window), 1e-3) for k in keys}  # the last window is partial
    xs = [(k + 0.5) * window / 60 for k in keys]
    ax = axes[1][0]
    ax.plot(xs, [len(buckets[k]) / span[k] for k in keys], color="tab:blue", label="answered req/s")
    ax.axhline(run.target, color="gray", linestyle=":", label=f"asked {run.target:g}")
    ax.plot(xs, [sum(1 for a in buckets[k] if a.status >= 500) / span[k] for k in keys], color="tab:red", label="5xx/s")
    ax.set_title(f"throughput per {window:.0f} s")
    ax.set_xlabel("minutes into the hold")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1][1]
    ax.plot(xs, [pct([a.ms for a in buckets[k]], 50) for k in keys], label="p50", color="tab:blue")
    ax.plot(xs, [pct([a.ms for a in buckets[k]], 99) for k in keys], label="p99", color="tab:orange")
    ax.plot(xs, [max(a.ms for a in buckets[k]) for k in keys], label="max", color="tab:red", alpha=0.5)
    ax.plot(xs, [pct([a.ms for a in buckets[k] if a.kind == "feed"] or [float("nan")], 99) for k in keys], label="feed p99", color="tab:green", linestyle="--")
    ax.set_yscale("log")
    ax.set_title(f"latency per {window:.0f} s (sent -> answered)")
    ax.set_xlabel("minutes into the hold")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1][2]
    steps = b.results["steps"]
    if steps:
        ax.plot([st["target"] for st in steps], [st["achieved"] for st in steps], "o-", label="answered req/s")
        ax.plot([st["target"] for st in steps], [st["target"] for st in steps], ":", color="gray", label="asked")
        ax2 = ax.twinx()
        ax2.plot([st["target"] for st in steps], [st["corrected"]["p99"] for st in steps], "s--", color="tab:red", label="corrected p99 ms")
        ax2.set_yscale("log")
        ax2.set_ylabel("ms")
        ax2.legend(fontsize=8, loc="lower right")
        ax.set_xlabel("asked req/s")
        ax.legend(fontsize=8, loc="upper left")
        ax.set_title("step-up")
    else:
        ax.plot(ts, [x["lag_events"] for x in samples], color="tab:orange")
        ax.set_title("projection lag (events)")
    ax.grid(alpha=0.3)
    m = b.results["machine"]
    fig.suptitle(f"photostream load test, {b.backend}, {s['rate']:.0f} req/s for {s['seconds'] / 60:.1f} min, "
                 f"{m['cores']} cores, load at start {m['load'][0]:.1f}, {dt.date.today().isoformat()}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/load_test.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("distributed", "embedded"), default="distributed", help="default: distributed (the local stack)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the hold (default 10)")
    p.add_argument("--rate", type=float, default=0.0, help="hold this many requests/s and skip the step-up")
    p.add_argument("--rates", default="10,15,20,25,35,50,70,100,140,200,280,400", help="the step-up's rates, req/s (default %(default)s)")
    p.add_argument("--step-seconds", type=float, default=20.0, help="length of each step (default 20)")
    p.add_argument("--p99-ms", type=float, default=1000.0, help="a step is sustained only with its corrected p99 under this (default 1000)")
    p.add_argument("--max-lag-s", type=float, default=10.0, help="... and the projections at most this many seconds of the "
                   "mix's writes behind at its end, in events (default 10)")  # fmt: skip
    p.add_argument("--connections", type=int, default=32, help="wrk connections = threads (default 32)")
    p.add_argument("--timeout-s", type=float, default=30.0, help="wrk's request timeout (default 30)")
    p.add_argument("--sample-seconds", type=float, default=5.0, help="memory/CPU/lag sampling period (default 5)")
    p.add_argument("--converge-s", type=float, default=120.0, help="how long mismatching counts are read again (default 120)")
    p.add_argument("--wait-load", type=float, default=0.0, help="after seeding, wait until the 1-minute load average is under "
                   "this before measuring (the box is shared; default: do not wait)")  # fmt: skip
    p.add_argument("--wait-minutes", type=float, default=30.0, help="... but at most this long (default 30)")
    g = p.add_argument_group("data")
    g.add_argument("--graph", type=Path, default=DEFAULT_GRAPH, help="edge list to seed (default: %(default)s)")
    g.add_argument("--max-accounts", type=int, default=None, help="seed only the first N nodes (default: all)")
    g.add_argument("--posts-per-account", type=int, default=1, help="seeded photo posts per account (default 1)")
    g.add_argument("--posters", type=int, default=300, help="accounts that post during the load (one photo uploaded each first; default 300)")
    g.add_argument("--worker-threads", type=int, default=16, help="`photostream worker --threads` (default 16)")
    g = p.add_argument_group("services and scratch names")
    add_stack_arguments(g, "load")
    g.add_argument("--out-dir", type=Path, default=BENCH / "results", help="where the .md, .json and .png go (default bench/results)")
    g.add_argument("--tag", default="", help="suffix of the output files: load-<date>[-TAG]")
    p.add_argument("--report-from", metavar="PICKLE", help="only write the report again from the measurements a run kept "
                   "(the path it printed); must be the first argument")  # fmt: skip
    args = p.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    args.graph = args.graph.resolve()
    if not args.graph.exists():
        p.error(f"--graph {args.graph} does not exist")
    if args.minutes <= 0:
        p.error("--minutes must be positive")
    return args


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def main() -> None:
    if sys.argv[1:2] == ["--report-from"]:
        with open(sys.argv[2], "rb") as f:
            report(pickle.load(f))
        return
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    bench = LoadTest(args)
    started = time.perf_counter()

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        bench.run()
        bench.results["seconds"] = time.perf_counter() - started
    finally:
        bench.cleanup()
    report(bench)


def report(bench: LoadTest) -> None:
    args = bench.args
    # The measurements, kept where a crash of the report below cannot lose them
    # (python bench/load_test.py --report-from PATH writes the report again).
    keep = Path(tempfile.gettempdir()) / f"load-test-{args.name}.pickle"
    bench.http = None  # type: ignore[assignment]
    bench.procs = {}
    bench.cluster = bench.session = None
    with open(keep, "wb") as f:
        pickle.dump(bench, f)
    say(f"measurements kept in {keep}")
    s = summary(bench)
    print_table(bench, s)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"load-{dt.date.today().isoformat()}" + (f"-{args.tag}" if args.tag else "")
    png = args.out_dir / f"{stem}.png"
    has_png = plot(bench, s, png)
    (args.out_dir / f"{stem}.md").write_text(report_markdown(bench, s, png.name if has_png else None))
    raw = {
        "mix": MIX, **bench.results, "summary": s,
        "samples": bench.samples,
    }  # fmt: skip
    (args.out_dir / f"{stem}.json").write_text(json.dumps(_jsonable(raw), indent=1, default=str))
    say(f"wrote {args.out_dir / stem}.md, .json{', .png' if has_png else ''}")


if __name__ == "__main__":
    main()
