"""The Mastodon client API, driven by Mastodon.py (the library from PyPI, unchanged)
against a real `photostream serve` process over real HTTP, on both backends
(distributed: beside a real worker, on a fresh topic, keyspace and bucket)."""
from __future__ import annotations

import io
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from mastodon import Mastodon, StreamListener
from mastodon.errors import MastodonAPIError, MastodonIllegalArgumentError, MastodonNotFoundError, MastodonUnauthorizedError
from websockets.sync.client import connect as ws_connect

from tests.support import jpeg
from tests.test_live_stream import Live, live_factory  # noqa: F401  (a fixture)
from tests.test_e2e_server import _deployments_dropped  # noqa: F401  (an autouse fixture)

pytestmark = pytest.mark.e2e
SCOPES = ["read", "write", "follow"]
PASSWORD = "correct horse battery"
WAIT = 15.0  # for a streamed event (distributed: the worker projects, then the API tails)


def server(live_factory: Any) -> Live:
    # Sign-ups come from one address: the behaviour tests' scaled rate limits.
    return live_factory({"PHOTOSTREAM_RATE_LIMIT_SCALE": "100"})


def app_credentials(url: str) -> tuple[str, str]:
    return Mastodon.create_app("photostream tests", scopes=SCOPES, redirect_uris="http://localhost/callback", api_base_url=url)


def register(url: str, app: tuple[str, str], username: str) -> Mastodon:
    client = Mastodon(client_id=app[0], client_secret=app[1], api_base_url=url, version_check_mode="created")
    client.create_account(username, PASSWORD, f"{username}@example.com", agreement=True, scopes=SCOPES)
    return client


def photo(client: Mastodon, seed: int) -> Any:
    return client.media_post(io.BytesIO(jpeg(64, 48, (seed * 40 % 256, 90, 30))), mime_type="image/jpeg")


class Collector(StreamListener):
    def __init__(self) -> None:
        self.notifications: list[Any] = []
        self.updates: list[Any] = []
        self.arrived = threading.Event()

    def on_notification(self, notification: Any) -> None:
        self.notifications.append(notification)
        self.arrived.set()

    def on_update(self, status: Any) -> None:
        self.updates.append(status)
        self.arrived.set()


def wait_for(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)  # polling what a background stream thread collected
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_a_mastodon_client_registers_posts_follows_pages_favourites_replies_and_searches(live_factory: Any) -> None:
    live = server(live_factory)
    url = live.server.base_url
    app = app_credentials(url)
    alice, bob = register(url, app, "alice"), register(url, app, "bob")
    me = alice.account_verify_credentials()
    assert me.username == "alice" and me.acct == "alice" and me.source.privacy == "public"
    assert alice.retrieve_mastodon_version() == "4.2.0"  # the version check passed on "4.2.0 (compatible; ...)"

    # Alice's user stream (server-sent events) hears what happens to her.
    heard = Collector()
    handle = alice.stream_user(heard, run_async=True, reconnect_async=False)
    try:
        relationship = bob.account_follow(me.id)
        assert relationship.following is True and relationship.id == me.id
        assert bob.account_relationships([me.id])[0].following is True
        assert [a.username for a in alice.account_followers(me.id)] == ["bob"]

        # Three posts with photos; the first tags a hashtag.
        media = photo(alice, 1)
        assert media.type == "image" and media.url.startswith(url) and alice.media(media.id).id == media.id
        first = alice.status_post("Sunset over the bay #sunset", media_ids=[media])
        assert first.media_attachments[0].id == media.id
        assert 'class="mention hashtag"' in first.content and first.visibility == "public"
        assert [t.name for t in first.tags] == ["sunset"]
        second = alice.status_post("Morning", media_ids=[photo(alice, 2)])
        third = alice.status_post("Night", media_ids=[photo(alice, 3)])

        # Bob's home timeline, paged two at a time through the Link header.
        page = bob.timeline_home(limit=2)
        assert [s.id for s in page] == [third.id, second.id]
        rest = bob.fetch_next(page)
        assert [s.id for s in rest] == [first.id]
        assert bob.fetch_next(rest) is None or list(bob.fetch_next(rest)) == []
        newer = bob.timeline_home(min_id=first.id)
        assert [s.id for s in newer] == [third.id, second.id]
        assert [s.id for s in bob.timeline_home(since_id=second.id)] == [third.id]
        assert [s.id for s in bob.timeline_hashtag("sunset")] == [first.id]
        assert [s.id for s in alice.account_statuses(me.id)] == [third.id, second.id, first.id]

        # Favourite, and who favourited.
        favourited = bob.status_favourite(first)
        assert favourited.favourited is True and favourited.favourites_count == 1
        assert [a.username for a in alice.status_favourited_by(first)] == ["bob"]

        # A reply is a comment on the post, a status of its own.
        reply = bob.status_post("Lovely light @alice", in_reply_to_id=first)
        assert reply.in_reply_to_id == first.id and reply.in_reply_to_account_id == me.id
        assert alice.status(reply.id).content == reply.content
        context = alice.status_context(first)
        assert [s.id for s in context.descendants] == [reply.id]
        assert [s.id for s in alice.status_context(reply).ancestors] == [first.id]
        assert alice.status(first).replies_count == 1

        # Notifications: the follow, the favourite, the reply (a mention).
        notes = alice.notifications()
        by_type = {n.type: n for n in notes}
        assert set(by_type) == {"follow", "favourite", "mention"}
        assert by_type["favourite"].status.id == first.id and by_type["favourite"].account.username == "bob"
        assert by_type["mention"].status.id == reply.id
        assert [n.type for n in alice.notifications(types=["follow"])] == ["follow"]

        # And the stream told her as it happened.
        wait_for(lambda: {"follow", "favourite", "mention"} <= {n.type for n in heard.notifications}, "three streamed notifications")
    finally:
        handle.close()

    # Search: accounts, hashtags, statuses.
    found = bob.search_v2("alic")
    assert [a.username for a in found.accounts] == ["alice"]
    assert [t.name for t in bob.search_v2("#suns").hashtags] == ["sunset"]
    assert [s.id for s in bob.search_v2("sunset bay", result_type="statuses").statuses] == [first.id]

    # Unfavourite, delete the reply, unfollow.
    assert bob.status_unfavourite(first).favourited is False
    bob.status_delete(reply)
    with pytest.raises(MastodonNotFoundError):
        alice.status(reply.id)
    assert bob.account_unfollow(me.id).following is False
    assert list(bob.timeline_home()) == []


def test_the_authorization_code_flow_and_revocation(live_factory: Any) -> None:
    live = server(live_factory)
    url = live.server.base_url
    app = app_credentials(url)
    register(url, app, "carol")
    client = Mastodon(client_id=app[0], client_secret=app[1], api_base_url=url)
    authorize_url = client.auth_request_url(redirect_uris="http://localhost/callback", scopes=SCOPES, state="xyz")
    with httpx.Client(timeout=30) as http:
        page = http.get(authorize_url)
        assert page.status_code == 200 and 'name="password"' in page.text and "photostream tests" in page.text
        form = {"client_id": app[0], "redirect_uri": "http://localhost/callback", "scope": "read write follow", "state": "xyz"}
        wrong = http.post(f"{url}/oauth/authorize", data={**form, "username": "carol", "password": "wrong password"})
        assert wrong.status_code == 200 and "Wrong username or password" in wrong.text and "location" not in wrong.headers
        signed = http.post(f"{url}/oauth/authorize", data={**form, "username": "carol", "password": PASSWORD})
    assert signed.status_code == 302
    location = urlparse(signed.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://localhost/callback"
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    token = client.log_in(code=query["code"][0], redirect_uri="http://localhost/callback", scopes=SCOPES)
    assert client.account_verify_credentials().username == "carol"

    # The code is bound to its redirect URI.
    other = Mastodon(client_id=app[0], client_secret=app[1], api_base_url=url)
    with pytest.raises(Exception):
        other.log_in(code=query["code"][0], redirect_uri="http://elsewhere/callback", scopes=SCOPES)

    # The password grant gives a token too; revoking one signs the account out everywhere.
    password_client = Mastodon(client_id=app[0], client_secret=app[1], api_base_url=url)
    password_client.log_in("carol", PASSWORD, scopes=SCOPES)
    assert password_client.account_verify_credentials().username == "carol"
    client.revoke_access_token()
    for revoked in (token, password_client.access_token):
        answer = httpx.get(f"{url}/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {revoked}"})
        assert answer.status_code == 401 and "error" in answer.json()


def test_the_websocket_user_stream_carries_notifications_and_home_updates(live_factory: Any) -> None:
    live = server(live_factory)
    url = live.server.base_url
    app = app_credentials(url)
    dora, eve = register(url, app, "dora"), register(url, app, "eve")
    dora_id = dora.account_verify_credentials().id
    socket_url = url.replace("http://", "ws://") + f"/api/v1/streaming?stream=user&access_token={dora.access_token}"
    with ws_connect(socket_url, open_timeout=10) as ws:
        time.sleep(0.2)  # the socket is registered with the hub once accepted
        eve.account_follow(dora_id)
        event = json.loads(ws.recv(timeout=WAIT))
        assert event["stream"] == ["user"] and event["event"] == "notification"
        payload = json.loads(event["payload"])
        assert payload["type"] == "follow" and payload["account"]["username"] == "eve"
        dora.account_follow(eve.account_verify_credentials().id)
        eve.status_post("hello dora", media_ids=[photo(eve, 4)])
        while True:
            event = json.loads(ws.recv(timeout=WAIT))
            if event["event"] == "update":
                break
        assert json.loads(event["payload"])["content"] == "<p>hello dora</p>"
    with ws_connect(url.replace("http://", "ws://") + "/api/v1/streaming?stream=user&access_token=nope", open_timeout=10) as ws:
        assert "error" in json.loads(ws.recv(timeout=WAIT))

    # A direct status is a direct message: a conversation for both, never a post.
    eve_id = eve.account_verify_credentials().id
    sent = dora.status_post("@eve see you at noon", visibility="direct")
    assert sent.visibility == "direct" and [m.username for m in sent.mentions] == ["eve"]
    inbox = eve.conversations()
    assert len(inbox) == 1 and inbox[0].unread is True
    assert inbox[0].last_status.id == sent.id and [a.username for a in inbox[0].accounts] == ["dora"]
    assert sent.id not in [s.id for s in dora.account_statuses(dora_id)]
    assert eve.conversations_read(inbox[0].id).unread is False

    # Mute and block answer the relationship; a blocked account is not found.
    assert dora.account_mute(eve_id).muting is True
    assert dora.account_unmute(eve_id).muting is False
    blocked = dora.account_block(eve_id)
    assert blocked.blocking is True and blocked.following is False
    with pytest.raises(MastodonNotFoundError):
        eve.account(dora_id)
    assert dora.account_unblock(eve_id).blocking is False
    assert dora.account_lookup("eve").id == eve_id


def test_bad_input_gets_a_mastodon_error_never_a_server_error(live_factory: Any) -> None:
    live = server(live_factory)
    url = live.server.base_url
    app = app_credentials(url)
    frank = register(url, app, "frank")
    bad = Mastodon(access_token="not-a-token", api_base_url=url)
    with pytest.raises(MastodonUnauthorizedError):
        bad.timeline_home()
    with pytest.raises(MastodonNotFoundError):
        frank.status("123456789")
    with pytest.raises(MastodonNotFoundError):
        frank.status("not-an-id")
    with pytest.raises(MastodonAPIError, match="a post needs 1 to"):
        frank.status_post("no photo")
    with pytest.raises(MastodonAPIError, match="exactly one @mentioned"):
        frank.status_post("to nobody", visibility="direct")
    media = photo(frank, 5)
    with pytest.raises(MastodonAPIError, match="as visible as its account"):
        frank.status_post("followers only", media_ids=[media], visibility="private")
    with pytest.raises(MastodonAPIError, match="no unlisted posts"):
        frank.status_post("quietly", media_ids=[media], visibility="unlisted")
    with pytest.raises(MastodonAPIError, match="polls"):
        frank.status_post("careful", media_ids=[media], spoiler_text="spoiler")
    with pytest.raises(MastodonIllegalArgumentError, match="is taken"):
        Mastodon(client_id=app[0], client_secret=app[1], api_base_url=url).create_account("frank", PASSWORD, "f@example.com", agreement=True, scopes=SCOPES)

    headers = {"Authorization": f"Bearer {frank.access_token}"}
    cases = [
        ("GET", "/api/v1/timelines/home?limit=many", 422),
        ("GET", "/api/v1/timelines/home?max_id=abc", 422),
        ("GET", "/api/v1/notifications?limit=0", 422),
        ("GET", "/api/v2/search?q=", 422),
        ("GET", "/api/v2/search?q=x&type=films", 422),
        ("GET", "/api/v1/accounts/999999999999", 404),
        ("GET", "/api/v1/accounts/lookup?acct=nobody", 404),
        ("POST", "/api/v1/statuses/123/favourite", 404),
        ("POST", "/api/v1/accounts/123/follow", 404),
        ("GET", "/api/v1/media/123", 404),
        ("POST", "/api/v2/media", 422),
    ]
    with httpx.Client(base_url=url, timeout=30) as http:
        for method, path, status in cases:
            answer = http.request(method, path, headers=headers)
            assert answer.status_code == status, (path, answer.text)
            assert isinstance(answer.json()["error"], str) and answer.json()["error"], path
        junk = http.post("/api/v1/statuses", headers={**headers, "Content-Type": "application/json"}, content=b"{not json")
        assert junk.status_code == 422 and "JSON" in junk.json()["error"]
        unknown_client = http.post("/oauth/token", data={"grant_type": "password", "client_id": "x", "client_secret": "y"})
        assert unknown_client.status_code == 401 and "error" in unknown_client.json()
        no_app_token = http.post("/api/v1/accounts", data={"username": "gina", "password": PASSWORD})
        assert no_app_token.status_code == 401
        bad_upload = http.post("/api/v2/media", headers=headers, files={"file": ("x.jpg", b"not an image", "image/jpeg")})
        assert bad_upload.status_code in (415, 422) and "error" in bad_upload.json()

    # Nothing was half-done: no post came of the refused statuses.
    assert list(frank.account_statuses(frank.me().id)) == []
    # A locked (private) account posts followers-only statuses.
    assert frank.account_update_credentials(locked=True).locked is True
    private = frank.status_post("followers only", media_ids=[media], visibility="private")
    assert private.visibility == "private"
    assert httpx.get(f"{url}/api/v1/statuses/{private.id}").status_code == 404  # not to anonymous readers

    # Following a locked account is a request, until approved.
    gina = register(url, app, "gina")
    frank_id = frank.me().id
    assert gina.account_follow(frank_id).requested is True
    assert [n.type for n in frank.notifications()] == ["follow_request"]
    assert [a.username for a in frank.follow_requests()] == ["gina"]
    frank.follow_request_authorize(gina.me().id)
    assert gina.account_relationships([frank_id])[0].following is True
    assert [s.id for s in gina.timeline_home()] == [private.id]
