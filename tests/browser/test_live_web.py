"""The web app live: Alice keeps photostream open; Bob likes her photo and writes to her,
and she sees the like arrive (toast and badge) and the message appear, without reloading.
Any console error fails the test."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.support import jpeg

from .conftest import DESKTOP, PHONE
from .test_web_app import watch_console

pytestmark = pytest.mark.browser


def account(base: str, username: str) -> dict:
    response = httpx.post(f"{base}/v1/accounts", json={"username": username, "password": "correct horse battery"}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def signed_in(browser, base: str, who: dict, viewport: dict, errors: list[str]):
    ctx = browser.new_context(viewport=viewport)
    ctx.add_init_script(
        f"localStorage.setItem('photostream.token', {json.dumps(who['token'])});"
        f"localStorage.setItem('photostream.me', {json.dumps(json.dumps(who['account']))});"
    )
    page = ctx.new_page()
    watch_console(page, who["account"]["username"], errors)
    return ctx, page


def test_alice_sees_bobs_like_and_message_arrive_live(server: str, browser) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    suffix = str(int(time.time() * 1000))[-6:]
    alice, bob = account(server, f"alice_live_{suffix}"), account(server, f"bob_live_{suffix}")
    carol = account(server, f"carol_live_{suffix}")
    auth = {"Authorization": f"Bearer {alice['token']}"}
    media = httpx.post(f"{server}/v1/media", headers=auth, files={"file": ("p.jpg", jpeg(), "image/jpeg")}, timeout=30).json()
    post = httpx.post(f"{server}/v1/posts", headers=auth, json={"caption": "live!", "media_ids": [media["id"]]}, timeout=30).json()
    errors: list[str] = []
    a_ctx, a = signed_in(browser, server, alice, DESKTOP, errors)
    b_ctx, b = signed_in(browser, server, bob, PHONE, errors)
    try:
        a.goto(f"{server}/#/")
        expect(a.locator("body[data-live=on]")).to_have_count(1)  # the stream is connected
        badge = a.locator("nav .slot-notifications .badge")

        # Bob likes the post in his browser; Alice is told at once, with no reload.
        b.goto(f"{server}/#/p/{post['id']}")
        card = b.locator(f'article[data-post-id="{post["id"]}"]')
        card.get_by_role("button", name="Like", exact=True).click()
        expect(a.locator(".toast")).to_contain_text(f"{bob['account']['username']} liked your photo.")
        expect(badge).to_have_text("1")

        # Her notifications page shows it and marks it read (the badge goes away).
        a.locator("nav .slot-notifications").click()
        expect(a).to_have_url(re.compile(r"#/notifications$"))
        row = a.locator(".notification").first
        expect(row).to_contain_text(f"{bob['account']['username']} liked your photo.")
        expect(badge).to_be_hidden()

        # Bob opens his inbox and starts typing; Carol writes to him meanwhile: her
        # conversation appears at once and what he typed stays.
        b.goto(f"{server}/#/messages")
        b.get_by_role("textbox", name="To", exact=True).fill(alice["account"]["username"])
        from_carol = httpx.post(
            f"{server}/v1/messages",
            headers={"Authorization": f"Bearer {carol['token']}"},
            json={"to": bob["account"]["username"], "text": "hi bob"},
            timeout=30,
        )
        assert from_carol.status_code == 201, from_carol.text
        expect(b.locator(".conversation-row")).to_contain_text([carol["account"]["username"]])
        expect(b.get_by_role("textbox", name="To", exact=True)).to_have_value(alice["account"]["username"])

        # Bob writes to her; the conversation she opens takes his next message live.
        b.get_by_role("textbox", name="Message", exact=True).fill("saw your photo!")
        with b.expect_response(lambda r: r.url.endswith("/v1/messages") and r.request.method == "POST") as sent:
            b.get_by_role("button", name="Send").click()
        assert sent.value.status == 201, (sent.value.status, sent.value.text())
        expect(b).to_have_url(re.compile(r"#/messages/\d+-\d+$"))
        expect(a.locator(".toast")).to_contain_text("New message: saw your photo!")
        a.goto(f"{server}/#/messages")
        a.locator(".conversation-row a").first.click()
        expect(a.locator(".bubble")).to_have_text(["saw your photo!"])
        b.get_by_role("textbox", name="Message", exact=True).fill("second one")
        b.get_by_role("button", name="Send").click()
        expect(a.locator(".bubble")).to_have_text(["saw your photo!", "second one"])
        assert errors == [], errors
    finally:
        a_ctx.close()
        b_ctx.close()
