"""Feed read latency against a seeded photostream, measured with wrk.

Starts `photostream serve` on a seeded data folder (or uses --url), signs in --users
seeded accounts, and runs wrk on GET /v1/feed rotating their tokens, beside the same
wrk run on GET /healthz in the same script as the baseline (the cost of the HTTP stack
alone). Prints medians of --runs runs and the ratio to the baseline.

    photostream seed --graph ../shared/datasets/socfb-Reed98/socfb-Reed98.edges --data-dir /tmp/reed
    python bench/feed_latency.py --data-dir /tmp/reed
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

LUA = """
tokens = {%s}
counter = 0
request = function()
  counter = counter + 1
  local token = tokens[(counter %% #tokens) + 1]
  return wrk.format("GET", "%s", {["Authorization"] = "Bearer " .. token})
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_wrk(output: str) -> dict[str, float]:
    def millis(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if not (p50 and p99 and rate):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return {
        "p50_ms": millis(p50.group(1)),
        "p99_ms": millis(p99.group(1)),
        "rps": float(rate.group(1)),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def run_wrk(url: str, path: str, tokens: list[str], seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % (",".join(f'"{t}"' for t in tokens), path))
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    return parse_wrk(out)


def sign_in(url: str, users: int, password: str) -> list[str]:
    def one(n: int) -> str:
        r = httpx.post(f"{url}/v1/sessions", json={"username": f"user{n}", "password": password}, timeout=60)
        r.raise_for_status()
        return r.json()["token"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(users)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="seeded data folder to serve (ignored with --url)")
    parser.add_argument("--url", help="an already running server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--users", type=int, default=200, help="seeded accounts whose feeds are read")
    parser.add_argument("--password", default="photostream")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="runs of each; medians are reported")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    server = None
    url = args.url
    if url is None:
        if args.data_dir is None:
            sys.exit("give --data-dir of a seeded folder, or --url of a running server")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        exe = Path(sys.executable).parent / "photostream"
        server = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--data-dir", str(args.data_dir), "--log-level", "warning"]
        )
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    try:
        tokens = sign_in(url, args.users, args.password)
        results: dict[str, list[dict[str, float]]] = {"GET /healthz (baseline)": [], "GET /v1/feed?limit=20": []}
        for _ in range(args.runs):
            results["GET /healthz (baseline)"].append(run_wrk(url, "/healthz", tokens, args.seconds, args.connections))
            results["GET /v1/feed?limit=20"].append(run_wrk(url, "/v1/feed?limit=20", tokens, args.seconds, args.connections))
        print(f"\n{args.runs} runs x {args.seconds}s, {args.connections} connections, {args.users} readers; medians\n")
        print(f"| {'route':<26} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | non-2xx |")
        print(f"|{'-' * 28}|{'-' * 10}|{'-' * 9}|{'-' * 9}|---------|")
        medians = {}
        for route, runs in results.items():
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            medians[route] = m
            print(f"| {route:<26} | {m['rps']:>8.0f} | {m['p50_ms']:>7.2f} | {m['p99_ms']:>7.2f} | {m['non_2xx']:>7.0f} |")
        base, feed = medians["GET /healthz (baseline)"], medians["GET /v1/feed?limit=20"]
        print(f"\nfeed / baseline: p50 x{feed['p50_ms'] / base['p50_ms']:.1f}, p99 x{feed['p99_ms'] / base['p99_ms']:.1f}, "
              f"throughput {feed['rps'] / base['rps']:.2f} of the baseline")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
