"""Browser tests: a real `photostream serve` process and headless Chromium.

The server fixture starts `photostream serve --port <free port> --data-dir <tmp>` and waits
for /healthz. Set PHOTOSTREAM_BROWSER_BASE_URL to run the tests against a server that is
already running instead (its data is then shared with whatever else uses it).

Chromium is Debian's (/usr/bin/chromium, or PHOTOSTREAM_CHROMIUM); the tests skip when it
or the playwright package is missing. Never `playwright install`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"

CHROMIUM = os.environ.get("PHOTOSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _serve_command(port: int, data_dir: Path) -> list[str]:
    # The photostream of this interpreter's environment first (the one under test).
    candidate = Path(sys.executable).with_name("photostream")
    exe = str(candidate) if candidate.exists() else shutil.which("photostream")
    args = ["serve", "--port", str(port), "--data-dir", str(data_dir)]
    if exe:
        return [exe, *args]
    return [sys.executable, "-c", "from api.cli import main; main()", *args]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A renderer stuck in a script loop answers no protocol call, so Playwright's own
    # timeouts never fire; this one does.
    for item in items:
        if item.get_closest_marker("browser") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(180))


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running photostream server (started here unless given)."""
    given = os.environ.get("PHOTOSTREAM_BROWSER_BASE_URL")
    if given:
        base = given.rstrip("/")
        if not _healthy(base):
            pytest.fail(f"PHOTOSTREAM_BROWSER_BASE_URL={base} does not answer /healthz")
        yield base
        return

    data_dir = tmp_path_factory.mktemp("photostream-data")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = data_dir.parent / f"serve-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _serve_command(port, data_dir),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not _healthy(base):
            if proc.poll() is not None:
                log.flush()
                pytest.fail(
                    f"photostream serve exited with {proc.returncode}:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            if time.monotonic() > deadline:
                pytest.fail("photostream serve did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright import sync_api  # a test dependency: a missing one is a failure, not a skip

    if not Path(CHROMIUM).exists():  # a missing browser fails the run: a skip would prove nothing
        pytest.fail(f"no Chromium at {CHROMIUM}: run 'apt-get install -y chromium' (make test does it as root)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Iterator[Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield SCREENSHOTS
