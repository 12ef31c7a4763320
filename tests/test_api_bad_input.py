"""Bad input gets the 4xx of API.md, never a 500, always a `detail`, and leaves no event
behind. Each test walks a table of bad requests and reports every one that is answered
wrongly (not only the first), so one run lists all the holes of a route family.
"""
from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
from PIL import Image

from api.auth import TokenSigner
from tests.support import Api, User, jpeg, png

JSON = {"Content-Type": "application/json"}
TOKEN = "X-Consistency-Token"


@dataclass
class Refusals:
    """Sends bad requests; collects every answer that breaks the contract."""

    api: Api
    log_size: Callable[[], int]
    problems: list[str] = field(default_factory=list)

    def check(self, status: int | tuple[int, ...], method: str, path: str, user: User | None = None, *, label: str = "", **kwargs: Any) -> httpx.Response:
        before = self.log_size()
        response = self.api.request(method, path, user, **kwargs)
        what = f"{method} {path}{f' ({label})' if label else ''}"
        allowed = status if isinstance(status, tuple) else (status,)
        if response.status_code not in allowed:
            self.problems.append(f"{what}: expected {' or '.join(map(str, allowed))}, got {response.status_code} {response.text[:300]}")
        if response.status_code >= 500:
            self.problems.append(f"{what}: a {response.status_code} for bad input")
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = body.get("detail") if isinstance(body, dict) else None
        if not isinstance(detail, (str, list)) or not detail:
            self.problems.append(f"{what}: error body without a string or list detail: {response.text[:200]!r}")
        after = self.log_size()
        if after != before:
            self.problems.append(f"{what}: the refused command appended {after - before} event(s)")
        return response

    def done(self) -> None:
        assert not self.problems, "\n".join(["these bad requests were answered wrongly:", *self.problems])


def refusals(api: Api, log_size: Callable[[], int]) -> Refusals:
    return Refusals(api, log_size)


def a_post(api: Api, user: User, caption: str = "hello") -> dict[str, Any]:
    return api.post(user, caption)


def truncated_jpeg() -> bytes:
    picture = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    data = out.getvalue()
    return data[: len(data) // 2]


def png_claiming(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR is patched (with a correct CRC) to claim a huge size."""
    data = bytearray(png(16, 16))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def real_png_bomb(side: int) -> bytes:
    """A complete, valid 1-bit PNG of side×side black pixels: a few dozen KB, huge image."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- bodies ---------------------------------------------------------------------------


def test_malformed_json_is_400(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    post = a_post(api, ana)
    r = refusals(api, log_size)
    bodies = [b'{"username": "ben", "password": "password123"', b"{username: ben}", b"\xff\xfe\x00", b'{"a": 1}}']
    targets = [
        ("POST", "/v1/accounts", None),
        ("POST", "/v1/sessions", None),
        ("PATCH", "/v1/accounts/me", ana),
        ("POST", "/v1/posts", ana),
        ("PATCH", f"/v1/posts/{post['id']}", ana),
        ("POST", f"/v1/posts/{post['id']}/comments", ana),
    ]
    for method, path, user in targets:
        for body in bodies:
            response = r.check(400, method, path, user, content=body, headers=JSON, label=repr(body))
            if response.status_code == 400 and not isinstance(response.json().get("detail"), str):
                r.problems.append(f"{method} {path}: a 400 detail should be a sentence, got {response.json()}")
    r.done()


def test_wrong_types_missing_and_unknown_fields_are_422(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    photo = api.upload(ana)
    post = a_post(api, ana)
    r = refusals(api, log_size)
    cases: list[tuple[str, str, User | None, Any]] = [
        ("POST", "/v1/accounts", None, {"username": 5, "password": "password123"}),
        ("POST", "/v1/accounts", None, {"username": "ben", "password": 123456789}),
        ("POST", "/v1/accounts", None, {"username": "ben", "password": "password123", "display_name": 7}),
        ("POST", "/v1/accounts", None, {"username": ["ben"], "password": "password123"}),
        ("POST", "/v1/accounts", None, {"username": None, "password": "password123"}),
        ("POST", "/v1/accounts", None, {"password": "password123"}),
        ("POST", "/v1/accounts", None, {"username": "ben"}),
        ("POST", "/v1/accounts", None, {}),
        ("POST", "/v1/accounts", None, []),
        ("POST", "/v1/accounts", None, "ben"),
        ("POST", "/v1/accounts", None, {"username": "ben", "password": "password123", "admin": True}),
        ("POST", "/v1/sessions", None, {"username": 5, "password": "password123"}),
        ("POST", "/v1/sessions", None, {"username": "ana"}),
        ("POST", "/v1/sessions", None, {"username": "ana", "password": "password123", "remember": True}),
        ("PATCH", "/v1/accounts/me", ana, {"display_name": 5}),
        ("PATCH", "/v1/accounts/me", ana, {"bio": ["x"]}),
        ("PATCH", "/v1/accounts/me", ana, {"private": "yes"}),
        ("PATCH", "/v1/accounts/me", ana, {"avatar_media_id": 12345}),
        ("PATCH", "/v1/accounts/me", ana, {"avatar_media_id": "abc"}),
        ("PATCH", "/v1/accounts/me", ana, {"username": "someone_else"}),
        ("PATCH", "/v1/accounts/me", ana, {"followers_count": 1000000}),
        ("POST", "/v1/posts", ana, {"caption": "x", "media_ids": "x"}),
        ("POST", "/v1/posts", ana, {"caption": "x", "media_ids": photo["id"]}),
        ("POST", "/v1/posts", ana, {"caption": "x", "media_ids": [int(photo["id"])]}),
        ("POST", "/v1/posts", ana, {"caption": "x", "media_ids": [None]}),
        ("POST", "/v1/posts", ana, {"caption": 5, "media_ids": [photo["id"]]}),
        ("POST", "/v1/posts", ana, {"caption": "x"}),
        ("POST", "/v1/posts", ana, {"caption": "x", "media_ids": [photo["id"]], "author_id": "1"}),
        ("POST", "/v1/posts", ana, {"caption": "x", "media_ids": [photo["id"]], "location": "Lisbon"}),
        ("PATCH", f"/v1/posts/{post['id']}", ana, {"caption": 5}),
        ("PATCH", f"/v1/posts/{post['id']}", ana, {}),
        ("PATCH", f"/v1/posts/{post['id']}", ana, {"caption": "x", "media_ids": [photo["id"]]}),
        ("POST", f"/v1/posts/{post['id']}/comments", ana, {"text": 5}),
        ("POST", f"/v1/posts/{post['id']}/comments", ana, {"text": None}),
        ("POST", f"/v1/posts/{post['id']}/comments", ana, {}),
        ("POST", f"/v1/posts/{post['id']}/comments", ana, {"text": "hi", "reply_to": "1"}),
    ]
    for method, path, user, body in cases:
        r.check(422, method, path, user, json=body, label=repr(body)[:80])
    r.done()
    # Nothing of it took effect.
    me = api.ok("GET", "/v1/accounts/me", ana)
    assert (me["display_name"], me["bio"], me["private"], me["followers_count"]) == ("ana", "", False, 0)
    assert api.ok("GET", f"/v1/posts/{post['id']}")["comment_count"] == 0


def test_caption_and_comment_limits(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    post = a_post(api, ana)
    r = refusals(api, log_size)

    def new_post(caption: str) -> dict[str, Any]:
        return {"caption": caption, "media_ids": [api.upload(ana)["id"]]}

    thirty_one = " ".join(f"#tag{i}" for i in range(31))
    thirty = " ".join(f"#tag{i}" for i in range(30))
    for caption, label in (("x" * 2201, "2,201 characters"), (thirty_one, "31 hashtags"), ("é" * 2201, "2,201 accented")):
        r.check(422, "POST", "/v1/posts", ana, json=new_post(caption), label=label)
        r.check(422, "PATCH", f"/v1/posts/{post['id']}", ana, json={"caption": caption}, label=label)
    for text, label in (("", "empty"), ("   ", "spaces"), ("\n\t \n", "whitespace"), ("x" * 2201, "2,201 characters")):
        r.check(422, "POST", f"/v1/posts/{post['id']}/comments", ana, json={"text": text}, label=label)
    r.done()
    assert api.ok("GET", f"/v1/posts/{post['id']}")["caption"] == "hello"
    assert api.ok("GET", f"/v1/posts/{post['id']}")["comment_count"] == 0

    # The limits themselves are allowed.
    longest = api.ok("POST", "/v1/posts", ana, status=201, json=new_post("x" * 2200))
    assert longest["caption"] == "x" * 2200
    assert api.ok("GET", f"/v1/posts/{longest['id']}")["caption"] == "x" * 2200
    tagged = api.ok("POST", "/v1/posts", ana, status=201, json=new_post(thirty))
    assert tagged["tags"] == [f"tag{i}" for i in range(30)]
    edited = api.ok("PATCH", f"/v1/posts/{post['id']}", ana, json={"caption": "y" * 2200})
    assert edited["caption"] == "y" * 2200
    comment = api.ok("POST", f"/v1/posts/{post['id']}/comments", ana, status=201, json={"text": "z" * 2200})
    assert comment["text"] == "z" * 2200
    assert api.ok("GET", f"/v1/posts/{post['id']}")["comment_count"] == 1


def test_media_ids_of_a_post(api: Api, log_size) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    mine = [api.upload(ana, jpeg(8, 8))["id"] for _ in range(11)]
    bens = api.upload(ben)["id"]
    r = refusals(api, log_size)
    for media_ids, label in (
        ([], "no media"),
        (mine, "11 media"),
        (["123456789"], "unknown id"),
        ([mine[0], "123456789"], "one unknown id"),
        ([bens], "another user's id"),
        ([mine[0], bens], "one of another user's ids"),
        (["abc"], "non-numeric id"),
        (["99999999999999999999999"], "huge id"),
        ([mine[0], mine[0]], "the same photo twice"),
    ):
        r.check(422, "POST", "/v1/posts", ana, json={"caption": "x", "media_ids": media_ids}, label=label)
    r.done()
    assert api.ok("GET", "/v1/accounts/ana")["posts_count"] == 0
    assert api.walk("/v1/accounts/ana/posts") == []
    ten = api.ok("POST", "/v1/posts", ana, status=201, json={"caption": "x", "media_ids": mine[:10]})
    assert [m["id"] for m in ten["media"]] == mine[:10]


def test_bad_usernames_and_passwords(api: Api, log_size) -> None:
    api.sign_up("ana")
    r = refusals(api, log_size)
    for username in ("ana lee", "ana-lee", "ana!", "ana@x", "../ana", "ána", "ana\u200b", "", " ", "a" * 31, "😀"):
        r.check(422, "POST", "/v1/accounts", json={"username": username, "password": "password123"}, label=repr(username))
    for password in ("", "1234567", "x" * 129):
        r.check(422, "POST", "/v1/accounts", json={"username": "ben", "password": password}, label=f"password of {len(password)}")
    r.done()
    # The limits themselves are allowed.
    longest = api.ok("POST", "/v1/accounts", status=201, json={"username": "a" * 30, "password": "12345678"})
    assert longest["account"]["username"] == "a" * 30
    dotted = api.ok("POST", "/v1/accounts", status=201, json={"username": "b.c_9", "password": "x" * 128})
    assert dotted["account"]["username"] == "b.c_9"
    api.ok("POST", "/v1/sessions", json={"username": "a" * 30, "password": "12345678"})


def test_others_posts_and_unknown_ids(api: Api, log_size) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    post = a_post(api, ana)
    comment = api.ok("POST", f"/v1/posts/{post['id']}/comments", ana, status=201, json={"text": "mine"})
    r = refusals(api, log_size)
    r.check(403, "PATCH", f"/v1/posts/{post['id']}", ben, json={"caption": "hijacked"})
    r.check(403, "DELETE", f"/v1/posts/{post['id']}", ben)
    r.check(403, "DELETE", f"/v1/comments/{comment['id']}", ben)

    unknown = [str(int(post["id"]) + 1000), "abc", "99999999999999999999999", "9223372036854775807", "0", "-1", "1e5", "%20"]
    for bad in unknown:
        r.check(404, "GET", f"/v1/posts/{bad}", label="unknown post")
        r.check(404, "PATCH", f"/v1/posts/{bad}", ana, json={"caption": "x"}, label="unknown post")
        r.check(404, "DELETE", f"/v1/posts/{bad}", ana, label="unknown post")
        r.check(404, "POST", f"/v1/posts/{bad}/like", ana, label="unknown post")
        r.check(404, "GET", f"/v1/posts/{bad}/likes", label="unknown post")
        r.check(404, "POST", f"/v1/posts/{bad}/comments", ana, json={"text": "hi"}, label="unknown post")
        r.check(404, "GET", f"/v1/posts/{bad}/comments", label="unknown post")
        r.check(404, "DELETE", f"/v1/comments/{bad}", ana, label="unknown comment")
    # A comment id is not a post id, nor the other way round.
    r.check(404, "GET", f"/v1/posts/{comment['id']}", label="a comment's id")
    r.check(404, "DELETE", f"/v1/comments/{post['id']}", ana, label="a post's id")
    r.done()
    read = api.ok("GET", f"/v1/posts/{post['id']}")
    assert (read["caption"], read["comment_count"], read["like_count"]) == ("hello", 1, 0)


def test_bad_uploads(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    r = refusals(api, log_size)
    text = b"Dear diary, this is not a photo even though it is called me.jpg\n" * 4

    def upload(data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg") -> dict[str, Any]:
        return {"files": {"file": (name, data, ctype)}}

    r.check(415, "POST", "/v1/media", ana, label="text file named .jpg", **upload(text))
    r.check(415, "POST", "/v1/media", ana, label="empty file", **upload(b""))
    r.check(415, "POST", "/v1/media", ana, label="BMP", **upload(_encode("BMP"), "p.bmp", "image/bmp"))
    r.check(415, "POST", "/v1/media", ana, label="SVG", **upload(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "p.svg", "image/svg+xml"))
    r.check(422, "POST", "/v1/media", ana, label="truncated JPEG", **upload(truncated_jpeg()))
    r.check(413, "POST", "/v1/media", ana, label="PNG whose IHDR claims 30000x30000", **upload(png_claiming(30_000, 30_000), "b.png", "image/png"))
    bomb = real_png_bomb(20_000)
    assert len(bomb) < 200_000
    r.check(413, "POST", "/v1/media", ana, label="real PNG bomb 20000x20000", **upload(bomb, "b.png", "image/png"))
    r.check(413, "POST", "/v1/media", ana, label="15 MB + 1 byte", **upload(b"\xff\xd8\xff" + bytes(15 * 1024 * 1024 - 2)))
    r.check(413, "POST", "/v1/media", ana, label="16 MB", **upload(b"\xff\xd8\xff" + bytes(16 * 1024 * 1024)))
    r.check(422, "POST", "/v1/media", ana, label="multipart without the file field", files={"photo": ("p.jpg", jpeg(), "image/jpeg")})
    r.check(422, "POST", "/v1/media", ana, label="a form field instead of a file", data={"file": "not a file"})
    r.check(422, "POST", "/v1/media", ana, label="no body at all")
    r.check(422, "POST", "/v1/media", ana, label="JSON instead of a form", json={"file": "abc"})
    r.done()
    # A real image still goes through afterwards.
    assert api.upload(ana, jpeg())["content_type"] == "image/jpeg"


def _encode(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, fmt)
    return out.getvalue()


# --- authentication -----------------------------------------------------------------


def test_auth_routes_refuse_missing_and_bad_tokens(api: Api, log_size, settings) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    post = a_post(api, ana)
    comment = api.ok("POST", f"/v1/posts/{post['id']}/comments", ana, status=201, json={"text": "mine"})
    photo = api.upload(ana)
    auth_routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/accounts/me", {}),
        ("PATCH", "/v1/accounts/me", {"json": {"bio": "hacked"}}),
        ("POST", "/v1/accounts/ben/follow", {}),
        ("DELETE", "/v1/accounts/ben/follow", {}),
        ("POST", "/v1/media", {"files": {"file": ("p.jpg", jpeg(), "image/jpeg")}}),
        ("POST", "/v1/posts", {"json": {"caption": "x", "media_ids": [photo["id"]]}}),
        ("PATCH", f"/v1/posts/{post['id']}", {"json": {"caption": "hacked"}}),
        ("DELETE", f"/v1/posts/{post['id']}", {}),
        ("POST", f"/v1/posts/{post['id']}/like", {}),
        ("DELETE", f"/v1/posts/{post['id']}/like", {}),
        ("POST", f"/v1/posts/{post['id']}/comments", {"json": {"text": "hi"}}),
        ("DELETE", f"/v1/comments/{comment['id']}", {}),
        ("GET", "/v1/feed", {}),
    ]
    foreign = TokenSigner(b"another-secret-entirely", 3600).issue(ana.id)
    now = time.time()
    secret = settings.secret_key.encode() if settings.secret_key else None
    payload, signature = ana.token.split(".")
    forged_payload = base64.urlsafe_b64encode(f"{ben.id}.{int(now)}.{int(now) + 3600}".encode()).decode().rstrip("=")
    bad_headers: list[tuple[str, dict[str, str]]] = [
        ("no token", {}),
        ("garbage token", {"Authorization": "Bearer garbage"}),
        ("garbage with dots", {"Authorization": "Bearer a.b.c"}),
        ("empty bearer", {"Authorization": "Bearer "}),
        ("token signed with another secret", {"Authorization": f"Bearer {foreign}"}),
        ("payload swapped, signature kept", {"Authorization": f"Bearer {forged_payload}.{signature}"}),
        ("signature cut", {"Authorization": f"Bearer {payload}.{signature[:-4]}"}),
        ("Basic auth", {"Authorization": "Basic " + base64.b64encode(b"ana:password123").decode()}),
        ("token without a scheme", {"Authorization": ana.token}),
        ("non-ASCII token", {"Authorization": "Bearer \u00e9\u00e9"}),
    ]
    if secret is not None:
        expired = TokenSigner(secret, 60).issue(ana.id, now=now - 3600)
        bad_headers.append(("expired token", {"Authorization": f"Bearer {expired}"}))
    r = refusals(api, log_size)
    for label, headers in bad_headers:
        for method, path, kwargs in auth_routes:
            try:
                response = r.check(401, method, path, label=label, headers=headers, **kwargs)
            except (UnicodeEncodeError, httpx.LocalProtocolError):
                continue  # the client itself refuses to send such a header
            if response.status_code == 401 and "bearer" not in response.headers.get("www-authenticate", "").lower():
                r.problems.append(f"{method} {path} ({label}): a 401 without 'WWW-Authenticate: Bearer'")
    r.done()
    # Nothing happened to ana's things.
    read = api.ok("GET", f"/v1/posts/{post['id']}")
    assert (read["caption"], read["like_count"], read["comment_count"]) == ("hello", 0, 1)
    assert api.ok("GET", "/v1/accounts/ana")["bio"] == ""
    assert api.ok("GET", "/v1/accounts/ben")["followers_count"] == 0


def test_bad_consistency_token_is_400(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    post = a_post(api, ana)
    r = refusals(api, log_size)
    bad_tokens = [
        "garbage!",
        "not-a-token",
        base64.urlsafe_b64encode(b"a-b").decode(),
        base64.urlsafe_b64encode(b"0--1").decode(),
        base64.urlsafe_b64encode(b"-1-5").decode(),
        base64.urlsafe_b64encode(b"0-1.").decode(),
        base64.urlsafe_b64encode(b"0").decode(),
    ]
    reads = [
        ("/v1/accounts/me", ana),
        ("/v1/accounts/ana", None),
        ("/v1/accounts/ana/followers", None),
        ("/v1/accounts/ana/posts", None),
        (f"/v1/posts/{post['id']}", None),
        (f"/v1/posts/{post['id']}/comments", None),
        (f"/v1/posts/{post['id']}/likes", None),
        ("/v1/feed", ana),
    ]
    for token in bad_tokens:
        for path, user in reads:
            r.check(400, "GET", path, user, headers={TOKEN: token}, label=f"token {token[:20]!r}")
        # Commands merge the token they are sent into the one they answer: a bad one is
        # refused before anything is appended.
        r.check(400, "POST", f"/v1/posts/{post['id']}/like", ana, headers={TOKEN: token}, label=f"like, token {token[:20]!r}")
    r.done()


def test_over_long_consistency_token_is_400_too(api: Api, log_size) -> None:
    """A token far longer than any the server issues is just as malformed: 400, like the
    other bad tokens, not a validation 422."""
    ana = api.sign_up("ana")
    r = refusals(api, log_size)
    for path, user in (("/v1/accounts/ana", None), ("/v1/feed", ana)):
        r.check(400, "GET", path, user, headers={TOKEN: "x" * 600}, label="600 characters")
        r.check(400, "GET", path, user, headers={TOKEN: base64.urlsafe_b64encode(b".".join(b"0-1" for _ in range(200))).decode()}, label="200 positions")
    r.done()


def test_oversized_and_odd_requests_never_500(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    post = a_post(api, ana)
    r = refusals(api, log_size)
    huge = b'{"caption": "' + b"x" * (200 * 1024) + b'", "media_ids": ["1"]}'
    r.check(413, "POST", "/v1/posts", ana, content=huge, headers=JSON, label="200 KiB JSON")
    r.check(413, "POST", f"/v1/posts/{post['id']}/comments", ana, content=b'{"text": "' + b"y" * (100 * 1024) + b'"}', headers=JSON, label="100 KiB comment body")
    deep = b"[" * 5000 + b"]" * 5000
    for target in ("/v1/posts", "/v1/accounts"):
        r.check((400, 422), "POST", target, ana, content=deep, headers=JSON, label="deeply nested JSON")
    r.check((400, 422), "POST", "/v1/posts", ana, content=b'{"caption": "x", "media_ids": ["1"]}', headers={"Content-Type": "text/plain"}, label="JSON sent as text/plain")
    r.check((400, 422), "POST", "/v1/posts", ana, content=b'\x00\x01', headers={"Content-Type": "application/octet-stream"}, label="binary body")
    r.check((400, 422), "POST", "/v1/accounts", content=b'{"username": "ben", "password": "pass\\ud800word"}', headers=JSON, label="lone surrogate")
    r.done()
