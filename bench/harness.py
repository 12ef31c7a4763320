"""What the benchmarks that run a private photostream share.

`Deployment` starts and stops one `photostream serve` (and, distributed, one
`photostream worker`) on scratch names of their own: a fresh topic `bench.<name>`,
keyspace `bench_<name>`, MinIO bucket `bench-<name>` and data folder on the shared local
stack, or a fresh embedded data folder. It refuses names that exist and drops only what
it created. Also here: progress lines, percentiles, the machine's description, and the
CPU and memory of processes read from /proc.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

import httpx  # noqa: E402

from feed_latency import free_port  # noqa: E402

DEFAULT_GRAPH = REPO.parent / "shared" / "datasets" / "socfb-Reed98" / "socfb-Reed98.edges"
if not DEFAULT_GRAPH.exists():  # a worktree is not beside the shared folder
    DEFAULT_GRAPH = Path("/work/shared/datasets/socfb-Reed98/socfb-Reed98.edges")
STACK_SERVICES = ("kafka", "cassandra", "minio")

# ----- small helpers ---------------------------------------------------------------------


def now() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


def say(message: str) -> None:
    print(f"[{now()}] {message}", flush=True)


def pyplot() -> Any | None:
    """matplotlib.pyplot drawing to files, or None (said once) when matplotlib is not
    installed: it is not a project dependency, and the Markdown report does without."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    return plt


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        mem_kib = 0
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load": os.getloadavg(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_load(load: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def shown(path: Path) -> str:
    """A path as a reader of the report can use it: relative to the repository when inside
    or beside it, else as is."""
    text = os.path.relpath(path, REPO)
    return text if not text.startswith("../..") else str(path)


# ----- processes: CPU and memory from /proc ------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of one process in MiB (nan when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# One load generator speaks for every account from one address: the per-address limits
# (api/ratelimit.py) would measure the limiter, so benchmarks switch them off ("0/1").
NO_ADDRESS_LIMITS = json.dumps({a: {"address": "0/1"} for a in ("sign_in", "sign_up", "post", "upload", "comment", "like", "follow", "message")})

class CpuMeter:
    """CPU use of named processes over a phase, in % of one core; `machine` is the whole
    box (all processes, other people's too) in % of one core, out of cores x 100."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.start = {k: cpu_seconds(v) for k, v in self.pids.items()}
        self.busy = machine_busy()
        self.t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        busy, total = machine_busy()
        out = {k: 100 * (cpu_seconds(v) - self.start[k]) / wall for k, v in self.pids.items()}
        out["machine"] = 100 * (os.cpu_count() or 1) * (busy - self.busy[0]) / max(total - self.busy[1], 1)
        return out


def stack_pids() -> dict[str, int]:
    """The shared stack's processes, from its pid files (`photostream stack status`)."""
    from stack.layout import Layout

    pids = {}
    for service in STACK_SERVICES:
        try:
            pids[service] = int(json.loads(Layout.default().pid_file(service).read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pass
    return pids


def fmt_cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}%" for k, v in cpu.items())


# ----- Kafka admin -----------------------------------------------------------------------


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


async def kafka_admin(bootstrap: str, action: Callable[[Any], Any]) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await action(admin)
    finally:
        await admin.close()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka.admin import NewTopic

    async def act(admin: Any) -> None:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])

    run_async(kafka_admin(bootstrap, act))


def delete_topics_matching(bootstrap: str, wanted: Callable[[str], bool]) -> list[str]:
    async def act(admin: Any) -> list[str]:
        names = [t for t in await admin.list_topics() if wanted(t)]
        if names:
            await admin.delete_topics(names)
        return names

    return run_async(kafka_admin(bootstrap, act))


# ----- a private photostream ---------------------------------------------------------------


class Deployment:
    """One private photostream: `photostream serve` and, distributed, `photostream
    worker`, as subprocesses on scratch names (see the module's docstring).

    `args` needs: backend ("distributed" | "embedded"), name, data_root, keep, kafka,
    cassandra, s3, partitions, worker_threads. `extra_keyspaces` are more scratch
    keyspaces the caller uses (checked free up front, dropped at the end)."""

    def __init__(self, args: Any, extra_env: dict[str, str] | None = None, extra_keyspaces: Sequence[str] = ()) -> None:
        self.args = args
        self.backend = getattr(args, "backend", "distributed")
        self.distributed = self.backend == "distributed"
        self.name = args.name
        self.topic = f"bench.{self.name}"
        self.keyspace = "bench_" + re.sub(r"[^a-z0-9_]", "_", self.name.lower())
        self.extra_keyspaces = list(extra_keyspaces)
        self.bucket = "bench-" + re.sub(r"[^a-z0-9-]", "-", self.name.lower())
        self.data_dir = Path(args.data_root) / f"bench-{self.name}"
        self.secret = secrets.token_urlsafe(32)
        self.env = dict(os.environ)
        for key in ("PHOTOSTREAM_EVENT_STORE", "PHOTOSTREAM_READ_STORE", "PHOTOSTREAM_MEDIA_STORE",
                    "PHOTOSTREAM_CELEBRITY_THRESHOLD", "PHOTOSTREAM_TIMELINE_MAX"):  # fmt: skip
            self.env.pop(key, None)  # the defaults are what is measured; embedded: SQLite in the folder
        self.env.update(PHOTOSTREAM_DATA_DIR=str(self.data_dir), PHOTOSTREAM_SECRET_KEY=self.secret)
        if self.distributed:
            self.env.update(
                PHOTOSTREAM_EVENT_STORE=f"kafka://{args.kafka}?topic={self.topic}&partitions={args.partitions}",
                PHOTOSTREAM_READ_STORE=f"cassandra://{args.cassandra}/{self.keyspace}",
                PHOTOSTREAM_MEDIA_STORE=f"s3://{args.s3}/{self.bucket}",
            )
        self.env.update(extra_env or {})
        self.exe = str(Path(sys.executable).parent / "photostream")
        self.procs: dict[str, subprocess.Popen] = {}
        self.url = ""
        self.cluster: Any = None
        self.session: Any = None
        self.owned = False  # set once the scratch names are known to be ours: cleanup drops only those
        self.stack = stack_pids() if self.distributed else {}

    # ----- processes -----------------------------------------------------------------

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.data_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        log.close()
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            say(f"{name} (pid {proc.pid}) did not stop in {timeout:.0f}s; killing it")
            proc.kill()
            proc.wait(timeout=30)

    def pids(self) -> dict[str, int]:
        """Every process of this deployment that runs: ours, then the shared stack's."""
        out = {("api" if k == "serve" else k): p.pid for k, p in self.procs.items() if k in ("serve", "worker") and p.poll() is None}
        return {**out, **self.stack}

    def start_serve(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.spawn("serve", [self.exe, "serve", "--port", str(port), "--log-level", "warning"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.procs["serve"].poll() is not None:
                raise RuntimeError(f"photostream serve exited; see {self.data_dir / 'serve.log'}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("photostream serve did not become ready in 120 s")

    def start_worker(self) -> tuple[float, float]:
        """Start one worker; returns (spawn time, ready time) on the perf_counter clock."""
        log = self.data_dir / "worker.log"
        seen = log.stat().st_size if log.exists() else 0
        spawned = time.perf_counter()
        self.spawn("worker", [self.exe, "worker", "--threads", str(self.args.worker_threads), "--log-level", "info"])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.procs["worker"].poll() is not None:
                raise RuntimeError(f"photostream worker exited; see {log}")
            with open(log, "rb") as f:
                f.seek(seen)
                if b"Worker]: Ready" in f.read():
                    return spawned, time.perf_counter()
            time.sleep(0.05)
        raise RuntimeError(f"the worker did not report ready in 180 s; see {log}")

    # ----- setup -------------------------------------------------------------------------

    def connect_cassandra(self) -> None:
        from cassandra.cluster import Cluster

        host, _, port = self.args.cassandra.partition(":")
        self.cluster = Cluster([host], port=int(port or 9042), protocol_version=5)
        self.session = self.cluster.connect()

    def ours(self, topic: str) -> bool:
        """The topics of this run: the events topic, its lanes and scratch topics, Faust's own."""
        return (
            topic == self.topic
            or topic.startswith(self.topic + ".")
            or topic.startswith(f"photostream-projections-{self.topic}-")
        )

    def prepare(self) -> None:
        """Check that the scratch names are free, take them, and migrate."""
        if self.data_dir.exists():
            raise SystemExit(f"{self.data_dir} exists; pick another --name")
        if self.distributed:
            taken = run_async(kafka_admin(self.args.kafka, lambda admin: admin.list_topics()))
            if any(self.ours(t) for t in taken):
                raise SystemExit(f"topic {self.topic} (or its lanes) exists; pick another --name")
            self.connect_cassandra()
            rows = self.session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
            if {self.keyspace, *self.extra_keyspaces} & {r.keyspace_name for r in rows}:
                raise SystemExit(f"keyspace {self.keyspace} exists; pick another --name")
        self.owned = True
        self.data_dir.mkdir(parents=True)
        if self.distributed:
            say(f"migrate: topic {self.topic}, keyspace {self.keyspace}, bucket {self.bucket}")
        else:
            say(f"embedded: data folder {self.data_dir}")
        subprocess.run([self.exe, "migrate"], env=self.env, check=True, capture_output=True, cwd=self.data_dir)

    def seed_graph(self, graph: Path, posts_per_account: int, max_accounts: int | None) -> dict[str, Any]:
        """`photostream seed` (bulk appends of what the command handlers would append; embedded: also projected)."""
        argv = [self.exe, "seed", "--graph", str(graph), "--posts-per-account", str(posts_per_account)]
        if max_accounts:
            argv += ["--max-accounts", str(max_accounts)]
        say("seed: " + shlex.join(argv[1:]) + ("  (worker stopped)" if self.distributed else ""))
        started = time.perf_counter()
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, cwd=self.data_dir)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"seeding failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        report = next((l for l in done.stdout.splitlines() if l.startswith("seeded ")), done.stdout.strip()[-300:])
        return {"seconds": seconds, "report": report, "command": "photostream " + shlex.join(argv[1:]).replace(str(graph), shown(graph))}

    def tokens_for(self, account_ids: Sequence[str]) -> list[str]:
        """Bearer tokens minted with the server's secret (no sign-in, no argon2 per account)."""
        from api.auth import TokenSigner

        signer = TokenSigner(self.secret.encode(), 7 * 86400)
        return [signer.issue(str(i)) for i in account_ids]

    # ----- teardown ----------------------------------------------------------------------

    def cleanup(self) -> None:
        for name in list(self.procs):
            self.stop(name, signal.SIGINT if name.startswith("wrk") else signal.SIGTERM)
        if not self.owned:
            return
        if self.args.keep:
            where = f"topic {self.topic}*, keyspace {self.keyspace}, bucket {self.bucket}, " if self.distributed else ""
            say(f"--keep: leaving {where}{self.data_dir}")
            return
        if self.distributed:
            self._drop_distributed()
        else:
            say("cleanup: data folder")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _drop_distributed(self) -> None:
        say("cleanup: topics, consumer group, keyspaces, bucket, data folder")
        try:
            gone = delete_topics_matching(self.args.kafka, self.ours)
            say(f"  dropped {len(gone)} topics")
        except Exception as exc:  # noqa: BLE001 - clean up as much as possible
            say(f"  could not drop the topics: {exc}")
        try:
            from stack.layout import Layout

            lib = Layout.default().kafka_home / "lib"
            subprocess.run(
                ["java", "-cp", f"{lib}/*", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                 "--bootstrap-server", self.args.kafka, "--delete", "--group", f"photostream-projections-{self.topic}"],
                capture_output=True, timeout=120,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            say(f"  could not drop the consumer group: {exc}")
        if self.session is not None:
            for ks in (self.keyspace, *self.extra_keyspaces):
                try:
                    self.session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
                except Exception as exc:  # noqa: BLE001
                    say(f"  could not drop keyspace {ks}: {exc}")
            self.cluster.shutdown()
        try:
            from tests.deployment import delete_bucket

            delete_bucket(self.env["PHOTOSTREAM_MEDIA_STORE"])
        except Exception as exc:  # noqa: BLE001
            say(f"  could not drop bucket {self.bucket}: {exc}")


def add_stack_arguments(g: Any, default_name: str) -> None:
    """The flags `Deployment` reads, in an argparse group."""
    g.add_argument("--kafka", default="127.0.0.1:9092", help="Kafka bootstrap server (default %(default)s)")
    g.add_argument("--cassandra", default="127.0.0.1:9042", help="Cassandra host:port (default %(default)s)")
    g.add_argument("--s3", default="photostream:photostream-secret@127.0.0.1:9000", help="MinIO ACCESS:SECRET@host:port (default: the local stack's)")
    g.add_argument("--partitions", type=int, default=12, help="partitions of the scratch events topic (default 12)")
    g.add_argument("--name", default=default_name + dt.datetime.now().strftime("%Y%m%d%H%M%S"), help="scratch name: topic bench.NAME, "
                   f"keyspace bench_NAME, bucket bench-NAME, folder DATA_ROOT/bench-NAME (default: {default_name}<timestamp>)")  # fmt: skip
    g.add_argument("--data-root", default="/tmp", help="where the scratch data folder goes (default /tmp)")
    g.add_argument("--keep", action="store_true", help="leave the topics, keyspaces, bucket and data folder (for debugging)")
