"""Processes, pid files and readiness probes, with nothing service-specific in them.

A pid file records the pid *and* the process start time read from /proc, so that a
pid the kernel has since handed to some unrelated process is never mistaken for ours
(and never signalled by `stack down`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

# Popen objects of the services this Python process started. Keeping them lets a
# long-lived caller (a test session) reap a service that died, instead of seeing its
# zombie as "alive", and keeps Popen.__del__ from warning about a running child.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_EXIT_CODES: dict[int, int] = {}  # of those children, once reaped


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds."""

    pid: int
    start_time: int | None  # clock ticks since boot (field 22 of /proc/<pid>/stat)
    argv0: str
    started_at: float  # wall clock, for status displays

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PidRecord:
        raw = json.loads(text)
        return cls(
            pid=int(raw["pid"]),
            start_time=None if raw.get("start_time") is None else int(raw["start_time"]),
            argv0=str(raw.get("argv0", "")),
            started_at=float(raw.get("started_at", 0.0)),
        )


# --- /proc ------------------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return text[text.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    fields = _proc_stat_fields(pid)
    # stat field 22 (starttime) is index 19 once pid and (comm) are dropped.
    return int(fields[19]) if fields else None


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process, from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _EXIT_CODES[pid] = child.returncode
        _CHILDREN.pop(pid, None)
        return False
    fields = _proc_stat_fields(pid)
    if fields is not None:
        return fields[0] not in ("Z", "X")
    if Path("/proc/self/stat").exists():
        return False  # Linux, and no /proc entry: gone
    try:  # no /proc (macOS): fall back to signal 0
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_code(pid: int) -> int | None:
    """The exit status of a service this process started and saw die, if known."""
    return _EXIT_CODES.get(pid)


def record_alive(record: PidRecord) -> bool:
    """True if the pid is alive and is still the very process we started."""
    if not pid_alive(record.pid):
        return False
    if record.start_time is None:
        return True
    return process_start_time(record.pid) == record.start_time


# --- pid files --------------------------------------------------------------------


def write_pid_file(path: Path, pid: int, argv0: str) -> PidRecord:
    record = PidRecord(
        pid=pid, start_time=process_start_time(pid), argv0=argv0, started_at=time.time()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(record.to_json())
    tmp.replace(path)  # atomic: a reader never sees half a pid file
    return record


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in a pid file, or None if there is none or it is unreadable."""
    try:
        return PidRecord.from_json(path.read_text())
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def live_record(path: Path) -> PidRecord | None:
    """The pid file's record if its process still runs; a stale file is removed."""
    record = read_pid_file(path)
    if record is None:
        if path.exists():
            path.unlink(missing_ok=True)  # garbage: not something we can act on
        return None
    if record_alive(record):
        return record
    path.unlink(missing_ok=True)
    return None


# --- starting and stopping ----------------------------------------------------------


def rotate_log(log: Path) -> None:
    """Keep the previous run's log as <name>.1 so each start's log begins clean."""
    if log.exists() and log.stat().st_size > 0:
        log.replace(log.with_name(log.name + ".1"))


def spawn_detached(
    argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a process that outlives us: own session, output to `log`, no stdin."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no SIGINT/SIGHUP from our terminal
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def _signal(record: PidRecord, sig: signal.Signals) -> None:
    """Signal the process group we created if it still is one, else just the pid."""
    try:
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)
    except ProcessLookupError:
        pass


def terminate(record: PidRecord, grace_seconds: float = 30.0) -> bool:
    """SIGTERM, wait up to `grace_seconds`, then SIGKILL. True if it had to be killed."""
    if not record_alive(record):
        return False
    _signal(record, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not record_alive(record):
            return False
        time.sleep(0.2)
    _signal(record, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and record_alive(record):
        time.sleep(0.1)
    return True


# --- probes -----------------------------------------------------------------------


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True if GET url answers 200; proxies are bypassed (this is loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_contains(log: Path, needle: str) -> bool:
    try:
        with log.open("rb") as f:
            return needle.encode() in f.read()
    except FileNotFoundError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("r", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except FileNotFoundError:
        return ""
