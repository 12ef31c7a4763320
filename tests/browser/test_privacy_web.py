"""The web app's privacy controls, driven like a person would.

Carol makes her account private in Edit profile. Dave asks to follow her (the button
reads "Requested") and sees that her photos are private. Carol confirms him on her
Follow requests page; Dave is now "Following". Dave mutes her, then blocks her from the
menu on her profile: his profile of her shows "Unblock", and Carol can no longer find
his. Unblocking gives Dave a plain "Follow" button again (the block ended the follow).
Any console error other than the expected 403/404 answers fails the test.
"""

from __future__ import annotations

import re
import time

import pytest

from .conftest import DESKTOP, PHONE
from .test_web_app import OPTIONAL_ENDPOINTS, _expect, sign_up

pytestmark = pytest.mark.browser


def watch(page, who: str, errors: list[str]) -> None:
    def on_console(msg) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "") or ""
        # Private posts answer 403 and a blocking account 404: shown, not errors.
        expected = "Failed to load resource" in msg.text and (
            ("403" in msg.text and url.endswith("/posts?limit=18"))
            or ("404" in msg.text and any(p in url for p in ("/v1/accounts/", *OPTIONAL_ENDPOINTS)))
        )
        if not expected:
            errors.append(f"{who}: console error: {msg.text} at {url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"{who}: uncaught: {exc}"))


def test_private_account_requests_block_and_mute(server: str, browser) -> None:
    expect = _expect()
    expect.set_options(timeout=15_000)
    suffix = str(int(time.time() * 1000))[-6:]
    carol, dave = f"carol_{suffix}", f"dave_{suffix}"
    errors: list[str] = []
    carol_ctx = browser.new_context(viewport=DESKTOP)
    dave_ctx = browser.new_context(viewport=PHONE, has_touch=True)
    c = carol_ctx.new_page()
    d = dave_ctx.new_page()
    watch(c, "carol", errors)
    watch(d, "dave", errors)
    try:
        sign_up(c, server, carol, "Carol")
        sign_up(d, server, dave, "Dave")

        # Carol goes private.
        c.goto(f"{server}/#/settings")
        c.get_by_label(re.compile("Private account")).check()
        c.get_by_role("button", name="Save", exact=True).click()
        expect(c).to_have_url(re.compile(rf"#/u/{carol}$"))
        expect(c.get_by_role("link", name="Follow requests")).to_be_visible()

        # Dave asks to follow her.
        d.goto(f"{server}/#/u/{carol}")
        expect(d.get_by_text("This account is private")).to_be_visible()
        follow = d.get_by_role("button", name="Follow", exact=True)
        expect(follow).to_be_enabled()
        with d.expect_response(lambda r: r.url.endswith(f"/v1/accounts/{carol}/follow") and r.request.method == "POST") as resp:
            follow.click()
        assert resp.value.json() == {"following": False, "requested": True}
        expect(d.get_by_role("button", name="Requested", exact=True)).to_be_visible()
        d.reload()
        expect(d.get_by_role("button", name="Requested", exact=True)).to_be_enabled()

        # Carol confirms him on her requests page.
        c.get_by_role("link", name="Follow requests").click()
        expect(c).to_have_url(re.compile(r"#/requests$"))
        row = c.locator(".request-row").filter(has_text=dave)
        with c.expect_response(lambda r: r.url.endswith(f"/v1/follow_requests/{dave}/approve")) as resp:
            row.get_by_role("button", name="Confirm").click()
        assert resp.value.ok, resp.value.status
        expect(row).to_contain_text("Now follows you")

        d.reload()
        expect(d.get_by_role("button", name="Following", exact=True)).to_be_enabled()
        expect(d.get_by_text("No posts yet")).to_be_visible()  # inside the private account now

        # Dave mutes her, then blocks her, from the menu on her profile.
        d.get_by_role("button", name=f"More options for {carol}").click()
        with d.expect_response(lambda r: r.url.endswith(f"/v1/accounts/{carol}/mute")) as resp:
            d.get_by_role("button", name="Mute", exact=True).click()
        assert resp.value.json() == {"muting": True}
        expect(d.get_by_role("button", name="Following", exact=True)).to_be_enabled()
        d.get_by_role("button", name=f"More options for {carol}").click()
        expect(d.get_by_role("button", name="Unmute", exact=True)).to_be_visible()
        d.get_by_role("button", name="Block", exact=True).click()
        with d.expect_response(lambda r: r.url.endswith(f"/v1/accounts/{carol}/block")) as resp:
            d.get_by_role("button", name=re.compile(rf"^Block {carol}\?")).click()
        assert resp.value.json() == {"blocking": True}
        expect(d.get_by_role("button", name="Unblock", exact=True)).to_be_visible()
        expect(d.get_by_text(f"You blocked {carol}")).to_be_visible()

        # Carol cannot find Dave any more.
        c.goto(f"{server}/#/u/{dave}")
        expect(c.get_by_text("Sorry, this page isn't available.")).to_be_visible()

        # Unblocked: the follow stays ended, so Dave may follow (ask) again.
        d.get_by_role("button", name="Unblock", exact=True).click()
        expect(d.get_by_role("button", name="Follow", exact=True)).to_be_enabled()
        assert not errors, "\n".join(errors)
    finally:
        carol_ctx.close()
        dave_ctx.close()
