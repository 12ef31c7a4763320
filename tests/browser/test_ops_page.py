"""The operator page (#/ops): events per second and projection lag over the last minutes."""
from __future__ import annotations

import urllib.request
import uuid

import orjson

from .conftest import DESKTOP
from .test_web_app import _expect, watch_console


def _sign_up(server: str) -> None:
    body = orjson.dumps({"username": f"ops{uuid.uuid4().hex[:10]}", "password": "password123"})
    request = urllib.request.Request(f"{server}/v1/accounts", data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_the_operator_page_draws_events_per_second_and_lag(server: str, browser) -> None:
    expect = _expect()
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    errors: list[str] = []
    watch_console(page, "ops", errors)
    try:
        page.goto(f"{server}/#/ops")
        expect(page.get_by_role("heading", name="Operations")).to_be_visible()
        # One row per projection, with its version and state.
        row = page.locator("tr[data-projection='home_timeline']")
        expect(row).to_contain_text("v1", timeout=15_000)
        expect(row).to_contain_text("live")
        for _ in range(3):  # events arrive between samples
            _sign_up(server)
            page.wait_for_timeout(2100)
        # The rate chart has a line, and it went above zero at some point.
        line = page.locator("#ops-rate polyline[data-series='events/s']")
        expect(line).to_have_count(1, timeout=10_000)
        points = line.get_attribute("points") or ""
        heights = [float(p.split(",")[1]) for p in points.split()]
        assert len(heights) >= 2 and min(heights) < max(heights), points  # not a flat line
        expect(page.locator("#ops-lag polyline")).to_have_count(9)  # one line per projection
        expect(page.locator("#ops-status")).to_contain_text("events in the log")
    finally:
        ctx.close()
    assert not errors, "\n".join(errors)
