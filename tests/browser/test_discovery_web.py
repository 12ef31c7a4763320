"""Explore, search as you type and who-to-follow in the web app, against a real server.

Three people are set up through the HTTP API (finn posts, erin follows finn and likes
the post and comments with a hashtag, finn follows gus); erin then signs in through the
web app and finds the post in the explore grid, follows her comment's hashtag link,
finds people and hashtags by typing, and sees gus suggested in her feed's side rail, on
the empty search page and on her profile. Any console error fails the test.
"""

from __future__ import annotations

import io
import re
import time

import httpx
import pytest
from PIL import Image

from .conftest import DESKTOP
from .test_web_app import PASSWORD, _expect, watch_console

pytestmark = pytest.mark.browser


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (230, 140, 60)).save(out, "JPEG", quality=85)
    return out.getvalue()


def _setup(base: str, suffix: str) -> tuple[dict[str, str], str, str]:
    """Accounts and a liked post through the API; returns the names, the post id and the
    last consistency token (so the check below waits for the read models)."""
    names = {who: f"{who}_{suffix}" for who in ("erin", "finn", "gus")}
    tokens: dict[str, str] = {}
    last = ""
    with httpx.Client(base_url=base, timeout=30) as http:

        def call(method: str, path: str, who: str | None = None, **kwargs: object) -> dict:
            nonlocal last
            headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
            response = http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
            last = response.headers.get("x-consistency-token", last)
            return response.json()

        for who, display in (("erin", "Erin Ávila"), ("finn", "Finn Østergaard"), ("gus", "Gus")):
            body = call("POST", "/v1/accounts", json={"username": names[who], "password": PASSWORD, "display_name": display})
            tokens[who] = body["token"]
        media = call("POST", "/v1/media", "finn", files={"file": ("photo.jpg", _jpeg(), "image/jpeg")})
        post = call("POST", "/v1/posts", "finn", json={"caption": f"lovely #sunset{suffix}", "media_ids": [media["id"]]})
        call("POST", f"/v1/accounts/{names['finn']}/follow", "erin")
        call("POST", f"/v1/accounts/{names['gus']}/follow", "finn")
        call("POST", f"/v1/posts/{post['id']}/like", "erin")
        call("POST", f"/v1/posts/{post['id']}/comments", "erin", json={"text": f"so #Golden{suffix} @{names['finn']}"})
        # Read our own writes once, so that the pages below find everything projected.
        seen = http.get("/v1/explore", params={"limit": 100}, headers={"X-Consistency-Token": last}).json()
        assert post["id"] in [p["id"] for p in seen["items"]]
    return names, post["id"], last


def test_explore_search_and_suggestions(server: str, browser, screenshots_dir) -> None:
    expect = _expect()
    expect.set_options(timeout=15_000)
    suffix = str(int(time.time() * 1000))[-6:]
    names, post_id, _ = _setup(server, suffix)
    errors: list[str] = []
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    watch_console(page, "erin", errors)
    try:
        page.goto(f"{server}/#/login")
        page.get_by_label("Username").fill(names["erin"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(re.compile(r"#/$"))

        # The feed's side rail suggests who to follow: gus, followed by finn.
        rail = page.locator(".feed-rail .suggestions-section")
        expect(rail.locator(".account-username")).to_have_text([names["gus"]])
        expect(rail).to_contain_text("Followed by 1 person you follow")

        # The explore grid shows finn's liked post.
        page.goto(f"{server}/#/explore")
        expect(page.locator(f'.explore-grid .grid-item[data-post-id="{post_id}"]')).to_be_visible()
        page.screenshot(path=str(screenshots_dir / "explore-desktop.png"))

        # A comment's hashtag and mention link as a caption's do.
        page.goto(f"{server}/#/p/{post_id}")
        comment = page.locator(".comment-text").filter(has_text=f"#Golden{suffix}")
        expect(comment.locator(".mention-link")).to_have_attribute("href", f"#/u/{names['finn']}")
        comment.locator(".tag-link").click()
        expect(page).to_have_url(re.compile(rf"#/tags/golden{suffix}$"))

        # Search: nothing typed yet suggests gus (followed by finn, whom erin follows).
        page.goto(f"{server}/#/search")
        suggested = page.locator(".search-results .suggestions-section")
        expect(suggested.locator(".account-username")).to_have_text([names["gus"]])
        expect(suggested).to_contain_text("Followed by 1 person you follow")
        page.screenshot(path=str(screenshots_dir / "search-suggestions-desktop.png"))

        # Typing finds people by a prefix of their name, accents folded, as you type.
        box = page.get_by_role("combobox")
        box.press_sequentially("OSTERG", delay=30)
        expect(page.locator(".search-results .account-username")).to_have_text([names["finn"]])
        box.fill("")
        box.press_sequentially(names["gus"][:6], delay=30)
        expect(page.locator(".search-results .account-username").first).to_have_text(names["gus"])

        # Hashtags, with their post counts.
        page.get_by_role("tab", name="Tags").click()
        box.fill("")
        box.press_sequentially(f"#SUNSET{suffix[:3]}", delay=30)
        expect(page.locator(".search-results .account-username")).to_have_text([f"#sunset{suffix}"])
        expect(page.locator(".search-results")).to_contain_text("1 post")
        page.screenshot(path=str(screenshots_dir / "search-tags-desktop.png"))

        # Posts by the words of their captions.
        page.get_by_role("tab", name="Posts").click()
        box.fill(f"Lovely sunset{suffix}")
        box.press("Enter")
        expect(page.locator(f'.search-results .grid-item[data-post-id="{post_id}"]')).to_be_visible()

        # Erin's own profile suggests gus too.
        page.goto(f"{server}/#/u/{names['erin']}")
        profile = page.locator(".profile-suggestions")
        expect(profile.locator(".account-username")).to_have_text([names["gus"]])
        expect(profile.get_by_role("button", name="Follow", exact=True)).to_be_visible()
        page.screenshot(path=str(screenshots_dir / "profile-suggestions-desktop.png"))
    finally:
        ctx.close()
    assert not errors, "\n".join(errors)
