"""Security (issue 9, item 4): authorization on every route, token expiry and revocation,
rate limits, security headers, unguessable media URLs, secrets kept out of logs.
docs/SECURITY.md maps each threat to the test here (or elsewhere) that covers it."""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from api.ratelimit import RateLimiter
from api.settings import Settings
from commands.accounts import authenticate
from commands.context import Argon2Hasher
from domain.errors import NotAuthenticated
from tests.support import Api, jpeg

# Routes anyone may call without signing in. Every other route must answer 401 without a
# valid token: a route added later is covered by test_every_other_route_refuses_anonymous
# until it is listed here on purpose.
PUBLIC: set[tuple[str, str]] = {
    ("POST", "/v1/accounts"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/accounts/{username}"),
    ("GET", "/v1/accounts/{username}/followers"),
    ("GET", "/v1/accounts/{username}/following"),
    ("GET", "/v1/accounts/{username}/posts"),
    ("GET", "/v1/posts/{post_id}"),
    ("GET", "/v1/posts/{post_id}/likes"),
    ("GET", "/v1/posts/{post_id}/comments"),
    ("GET", "/v1/tags/{tag}/posts"),
    ("GET", "/v1/projections"),
    ("GET", "/media/{key}"),
    ("GET", "/v1/search"),  # discovery: anonymous readers see public accounts and posts
    ("GET", "/v1/explore"),
    ("GET", "/v1/accounts/{username}/suggestions"),
    ("GET", "/v1/graph/path"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    # The Mastodon client API: what Mastodon lets anonymous readers and apps do.
    ("GET", "/api/v1/instance"),
    ("GET", "/api/v2/instance"),
    ("GET", "/api/v1/custom_emojis"),
    ("POST", "/api/v1/apps"),
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/authorize"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/revoke"),
    ("GET", "/api/v1/accounts/lookup"),
    ("GET", "/api/v1/accounts/search"),
    ("GET", "/api/v1/accounts/{account_id}"),
    ("GET", "/api/v1/accounts/{account_id}/statuses"),
    ("GET", "/api/v1/accounts/{account_id}/followers"),
    ("GET", "/api/v1/accounts/{account_id}/following"),
    ("GET", "/api/v1/statuses/{status_id}"),
    ("GET", "/api/v1/statuses/{status_id}/context"),
    ("GET", "/api/v1/statuses/{status_id}/favourited_by"),
    ("GET", "/api/v1/statuses/{status_id}/reblogged_by"),
    ("GET", "/api/v1/timelines/tag/{hashtag}"),
    ("GET", "/api/v1/timelines/public"),
    ("GET", "/api/v2/search"),
    ("GET", "/api/v1/streaming/health"),
}


def _routes(app) -> Iterator[tuple[str, str]]:
    """Every operation of the app, from its OpenAPI document (which every route is in:
    test_every_route_is_documented)."""
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield method.upper(), path


def test_every_route_is_documented(embedded: TestClient) -> None:
    hidden = [r.path for r in embedded.app.routes if isinstance(r, APIRoute) and not r.include_in_schema]
    assert hidden == ["/"], "a route left out of the OpenAPI document escapes the authorization and fuzz tests"


def _concrete(path: str) -> str:
    """A path with every parameter filled with a plausible value."""
    return re.sub(r"\{[^}]+\}", "12345", path)


@pytest.fixture
def embedded(tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", secret_key="test-secret")), raise_server_exceptions=False) as http:
        yield http


def test_every_other_route_refuses_anonymous_and_forged_tokens(embedded: TestClient) -> None:
    forged = "eyJ0aGlzIjoibm90In0.bm90IGEgc2lnbmF0dXJl"
    checked = []
    for method, path in _routes(embedded.app):
        if (method, path) in PUBLIC:
            continue
        url = _concrete(path)
        for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": "Basic YTpi"}):
            r = embedded.request(method, url, headers=headers)
            assert r.status_code == 401, f"{method} {path} with {headers or 'no token'}: {r.status_code} {r.text}"
            assert r.headers["www-authenticate"] == "Bearer"
        checked.append((method, path))
    # The routes that exist today are among them (new ones join automatically).
    assert {("GET", "/v1/feed"), ("POST", "/v1/posts"), ("DELETE", "/v1/sessions"), ("POST", "/v1/media")} <= set(checked)


def test_public_routes_answer_without_a_token(embedded: TestClient) -> None:
    routes = set(_routes(embedded.app))
    for method, path in PUBLIC & routes:
        if method != "GET":
            continue
        r = embedded.get(_concrete(path))
        assert r.status_code != 401, f"{path} is listed public but answered 401"


def test_sign_out_everywhere_revokes_every_token_and_only_those(api: Api) -> None:
    ana = api.sign_up("ana_revoke")
    bob = api.sign_up("bob_revoke")
    second = api.ok("POST", "/v1/sessions", json={"username": "ana_revoke", "password": "password123"})["token"]
    phone = {"Authorization": f"Bearer {second}"}
    assert api.ok("GET", "/v1/accounts/me", headers=phone)["username"] == "ana_revoke"

    api.ok("DELETE", "/v1/sessions", ana, status=204)

    for token in (ana.token, second):  # both of ana's sessions, from the moment it answered
        r = api.request("GET", "/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "signed out" in r.json()["detail"]
        r = api.request("POST", "/v1/posts", headers={"Authorization": f"Bearer {token}"}, json={"caption": "x", "media_ids": []})
        assert r.status_code == 401
        with api.http.websocket_connect(f"/v1/stream?token={token}") as ws:  # the live stream too
            refused = ws.receive_json()
            assert refused["type"] == "error" and "signed out" in refused["detail"], refused
    assert api.ok("GET", "/v1/accounts/me", bob)["username"] == "bob_revoke"  # others unaffected
    fresh = api.ok("POST", "/v1/sessions", json={"username": "ana_revoke", "password": "password123"})["token"]
    assert api.ok("GET", "/v1/accounts/me", headers={"Authorization": f"Bearer {fresh}"})["username"] == "ana_revoke"
    # Signing out everywhere again revokes the new session too, and only once per call.
    api.ok("DELETE", "/v1/sessions", headers={"Authorization": f"Bearer {fresh}"}, status=204)
    assert api.request("GET", "/v1/accounts/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 401
    assert api.request("DELETE", "/v1/sessions", headers={"Authorization": f"Bearer {fresh}"}).status_code == 401


def test_token_lifetime_is_a_setting(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "d", secret_key="s", token_ttl_days=2)
    with TestClient(create_app(settings)) as http:
        token = Api(http).sign_up("ttl_user").token
        claims = http.app.state.backend.signer.claims(token)
        assert claims.expires - claims.issued == 2 * 86400
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path / "d", token_ttl_days=0)


# ----- rate limits ---------------------------------------------------------------------


def test_token_bucket_refills_and_keeps_accounts_and_addresses_apart() -> None:
    now = [0.0]
    limiter = RateLimiter({"like": {"account": "2/10", "address": "3/10"}}, clock=lambda: now[0])
    limiter.check("like", account="a", address="1.1.1.1")
    limiter.check("like", account="a", address="1.1.1.1")
    with pytest.raises(Exception) as refused:
        limiter.check("like", account="a", address="2.2.2.2")  # the account's bucket is empty
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "5"
    limiter.check("like", account="b", address="1.1.1.1")  # another account, same address: 3rd
    with pytest.raises(Exception) as refused:
        limiter.check("like", account="c", address="1.1.1.1")  # the address's bucket is empty
    assert refused.value.status == 429
    now[0] = 5.0  # one token back in each bucket (2 per 10 s; 3 per 10 s)
    limiter.check("like", account="a", address="1.1.1.1")
    with pytest.raises(Exception):
        limiter.check("like", account="a", address="3.3.3.3")
    with pytest.raises(ValueError):
        RateLimiter({"like": {"device": "1/1"}})
    with pytest.raises(ValueError):
        RateLimiter({"like": {"account": "many"}})
    RateLimiter({"like": {"account": "0/1"}}).check("like", account="a", address=None)  # "0/..": off


def _limited(settings: Settings) -> Settings:
    one = {"account": "1/3600", "address": "1000/3600"}
    limits = {a: one for a in ("post", "upload", "comment", "like", "follow", "message")}
    limits["sign_up"] = {"address": "2/3600"}
    limits["sign_in"] = {"account": "2/3600", "address": "1000/3600"}
    return settings.model_copy(update={"rate_limits": limits, "rate_limit_scale": 1.0})


def _assert_429(r) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert "too many" in r.json()["detail"]


def test_rate_limits_answer_429_with_retry_after(settings: Settings) -> None:
    with TestClient(create_app(_limited(settings)), raise_server_exceptions=False) as http:
        api = Api(http)
        ana, bob = api.sign_up("ana_rl"), api.sign_up("bob_rl")
        _assert_429(api.request("POST", "/v1/accounts", json={"username": "cy_rl", "password": "password123"}))

        media = api.upload(ana)
        _assert_429(api.request("POST", "/v1/media", ana, files={"file": ("p.jpg", jpeg(), "image/jpeg")}))
        post = api.ok("POST", "/v1/posts", ana, status=201, json={"caption": "one", "media_ids": [media["id"]]})
        _assert_429(api.request("POST", "/v1/posts", ana, json={"caption": "two", "media_ids": [media["id"]]}))
        api.upload(bob)  # bob's own buckets are full

        api.ok("POST", f"/v1/posts/{post['id']}/like", bob)
        _assert_429(api.request("DELETE", f"/v1/posts/{post['id']}/like", bob))
        api.ok("POST", "/v1/accounts/ana_rl/follow", bob)
        _assert_429(api.request("DELETE", "/v1/accounts/ana_rl/follow", bob))
        api.ok("POST", f"/v1/posts/{post['id']}/comments", bob, status=201, json={"text": "hi"})
        _assert_429(api.request("POST", f"/v1/posts/{post['id']}/comments", bob, json={"text": "again"}))
        api.ok("POST", "/v1/messages", bob, status=201, json={"to": "ana_rl", "text": "hello"})
        _assert_429(api.request("POST", "/v1/messages", bob, json={"to": "ana_rl", "text": "again"}))

        wrong = {"username": "ana_rl", "password": "not-her-password"}
        assert api.request("POST", "/v1/sessions", json=wrong).status_code == 401
        assert api.request("POST", "/v1/sessions", json=wrong).status_code == 401
        _assert_429(api.request("POST", "/v1/sessions", json={"username": "ana_rl", "password": "password123"}))
        api.ok("POST", "/v1/sessions", json={"username": "bob_rl", "password": "password123"})  # per account

        # Refused requests changed nothing: one post, one like, one follow, one comment.
        seen = api.ok("GET", f"/v1/posts/{post['id']}")
        assert (seen["like_count"], seen["comment_count"]) == (1, 1)
        assert api.ok("GET", "/v1/accounts/ana_rl")["followers_count"] == 1
        assert api.ok("GET", "/v1/accounts/ana_rl")["posts_count"] == 1


# ----- headers, media URLs, secrets --------------------------------------------------


def test_security_headers_and_content_security_policy(embedded: TestClient) -> None:
    page = embedded.get("/")
    assert page.status_code == 200
    for r in (page, embedded.get("/web/app.js"), embedded.get("/v1/feed"), embedded.get("/healthz")):
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
    assert embedded.get("/v1/feed").headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in page.headers  # plain http: HSTS means nothing
    assert "strict-transport-security" in TestClient(embedded.app, base_url="https://testserver").get("/healthz").headers
    huge = embedded.post("/v1/accounts", content=b"x" * 100_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413 and huge.headers["x-frame-options"] == "DENY"


def test_media_urls_cannot_be_guessed(api: Api) -> None:
    ana = api.sign_up("ana_media")
    first, second = api.upload(ana), api.upload(ana)  # the same bytes twice
    key = first["urls"]["small"].split("/media/", 1)[1]
    media_id, capability, name = key.split("/")
    assert media_id == first["id"] and re.fullmatch(r"[0-9a-f]{32}", capability)
    assert capability not in str(second)  # a fresh capability per upload, even for equal bytes
    assert api.http.get(f"/media/{key}").status_code == 200
    # Knowing the id and even the exact bytes (so the content hash) is not enough.
    assert api.http.get(f"/media/{media_id}/{name}").status_code == 404
    assert api.http.get(f"/media/{media_id}/{'0' * 32}/{name}").status_code == 404


def test_secrets_are_never_logged(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = "correct-horse-battery-staple"
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        api = Api(http)
        user = api.sign_up("ana_secret", password)
        api.request("POST", "/v1/sessions", json={"username": "ana_secret", "password": "wrong-" + password})
        token = api.ok("POST", "/v1/sessions", json={"username": "ana_secret", "password": password})["token"]
        api.request("GET", "/v1/accounts/me", headers={"Authorization": f"Bearer {token}x"})  # a bad token
        api.request("POST", "/v1/accounts", json={"username": "bad name!", "password": password})  # a 422
        api.request("POST", "/v1/accounts", content=b'{"password": "' + password.encode() + b'"', headers={"content-type": "application/json"})
        backend = http.app.state.backend
        stored = http.portal.call(backend.commands.load, f"account-{user.id}", lambda es: list(es))[0][0]
        http.get("/readyz")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    secrets = [password, user.token, token, stored.password_hash, settings.secret_key or "test-secret"]
    if "@" in settings.media_store:  # the S3 secret key in the media store URL
        secrets.append(settings.media_store.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1])
    for secret in secrets:
        assert secret not in logged, f"a secret was logged: {secret[:6]}..."
    assert caplog.records, "nothing was logged at all: the test would prove nothing"


def test_unknown_username_costs_a_password_check_too(tmp_path) -> None:
    """Constant time sign-in: an unknown username still runs argon2 (against a dummy
    hash), so timing does not tell which usernames exist."""
    from commands.context import CommandContext
    from domain.ids import IdGenerator
    from streams.sqlite_event_store import SqliteEventStore

    calls: list[str] = []

    class Counting(Argon2Hasher):
        def verify(self, password_hash: str, password: str) -> bool:
            calls.append(password_hash)
            return super().verify(password_hash, password)

    hasher = Counting()
    ctx = CommandContext(events=SqliteEventStore.from_url(f"sqlite:///{tmp_path / 'e.db'}"), ids=IdGenerator(1), hasher=hasher)
    with pytest.raises(NotAuthenticated):
        asyncio.run(authenticate(ctx, "nobody_here", "password123"))
    with pytest.raises(NotAuthenticated):
        asyncio.run(authenticate(ctx, "not a valid name!", "password123"))
    assert calls == [hasher.dummy_hash, hasher.dummy_hash]
    assert hasher.hash("x").startswith("$argon2id$")


def test_a_read_store_that_stops_answering_gives_503_not_500(embedded: TestClient) -> None:
    """Cassandra timing out (ReadStoreUnavailable from the adapter) is a backing service
    down: 503 with Retry-After, like the event and media stores; never a 500."""
    from projections.sqlite_store import SqliteReadStore
    from projections.store import ReadStoreUnavailable

    backend = embedded.app.state.backend
    ana = Api(embedded).sign_up("ana_down")

    class Unreachable(SqliteReadStore):
        def get(self, *args: object, **kwargs: object) -> None:
            raise ReadStoreUnavailable("cassandra: Client request timeout")

    healthy = backend.views
    backend.views = Unreachable(healthy.path)
    try:
        for path in ("/v1/accounts/ana_down", "/v1/accounts/me"):
            r = embedded.get(path, headers=ana.auth)
            assert r.status_code == 503 and r.headers["retry-after"], (path, r.status_code, r.text)
    finally:
        backend.views = healthy


def test_a_post_made_while_projections_lag_answers_201_not_a_503_that_invites_a_repeat(tmp_path) -> None:
    """create_post appends, then shows the author from the read model; when that lags
    (a paused worker), answering 503 would make a retrying client post twice (found by
    tests/test_faults.py). The author comes from the write side instead."""
    settings = Settings(data_dir=tmp_path / "d", secret_key="s", consistency_wait_seconds=0.2)
    with TestClient(create_app(settings)) as http:
        api = Api(http)
        backend = http.app.state.backend
        backend.runner.stop()  # projections stop here: the new account is never projected
        ana = api.sign_up("ana_lag")
        media = api.upload(ana)
        post = api.ok("POST", "/v1/posts", ana, status=201, json={"caption": "hi", "media_ids": [media["id"]]})
        assert post["author"]["username"] == "ana_lag" and post["author"]["id"] == ana.id
        comment = api.ok("POST", f"/v1/posts/{post['id']}/comments", ana, status=201, json={"text": "first"})
        assert comment["author"]["username"] == "ana_lag"
