"""Behaviour of the HTTP contract (API.md): accounts and sessions, media, posts, likes,
comments and the home feed. Every test speaks HTTP only, through the `api`/`client`
fixtures, so the same tests run on every backend.

Each test covers one route family end to end (several requests per test) to keep the
suite fast: an app per test costs about a second to start and stop.
"""
from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

from PIL import Image

from streams.event_store import ConsistencyToken
from tests.support import Api, User, jpeg

ACCOUNT_FIELDS = {
    "id",
    "username",
    "display_name",
    "bio",
    "avatar_url",
    "private",
    "followers_count",
    "following_count",
    "posts_count",
    "created_at",
}
POST_FIELDS = {
    "id",
    "author",
    "caption",
    "media",
    "tags",
    "mentions",
    "created_at",
    "like_count",
    "comment_count",
    "liked_by_me",
}
COMMENT_FIELDS = {"id", "post_id", "author", "text", "created_at"}
MEDIA_FIELDS = {"id", "content_type", "width", "height", "urls"}
VARIANTS = {"thumb", "small", "large", "original"}
CACHE_FOREVER = "public, max-age=31536000, immutable"
TOKEN = "X-Consistency-Token"


# --- helpers --------------------------------------------------------------------------


def assert_rfc3339_utc(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0), f"{value} is not UTC"
    return parsed


def assert_id(value: Any) -> int:
    assert isinstance(value, str) and value.isdigit() and not value.startswith("0"), f"{value!r} is not a decimal id"
    return int(value)


def assert_error(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"expected {status}, got {response.status_code} {response.text}"
    body = response.json()
    assert isinstance(body.get("detail"), (str, list)) and body["detail"], body
    return body


def assert_account(account: dict[str, Any], username: str, **expected: Any) -> None:
    assert set(account) == ACCOUNT_FIELDS, sorted(set(account) ^ ACCOUNT_FIELDS)
    assert_id(account["id"])
    assert account["username"] == username
    assert_rfc3339_utc(account["created_at"])
    for key, value in expected.items():
        assert account[key] == value, f"{username}.{key}: {account[key]!r} != {value!r}"


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def usernames(items: list[dict[str, Any]]) -> list[str]:
    return [item["username"] for item in items]


def newest_first(items: list[dict[str, Any]]) -> bool:
    numbers = [int(i) for i in ids(items)]
    return numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)


def account(api: Api, username: str, viewer: User | None = None) -> dict[str, Any]:
    return api.ok("GET", f"/v1/accounts/{username}", viewer)


def get_post(api: Api, post_id: str, viewer: User | None = None) -> dict[str, Any]:
    return api.ok("GET", f"/v1/posts/{post_id}", viewer)


def image(data: bytes) -> Image.Image:
    opened = Image.open(io.BytesIO(data))
    opened.load()
    return opened


def post_with_media(api: Api, user: User, media_ids: list[str], caption: str = "") -> dict[str, Any]:
    return api.ok("POST", "/v1/posts", user, status=201, json={"caption": caption, "media_ids": media_ids})


def tiny_jpeg(seed: int) -> bytes:
    """A small JPEG whose colour differs per seed (so the variants differ too)."""
    return jpeg(24, 16, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))


# --- accounts and sessions --------------------------------------------------------------


def test_sign_up_answers_an_account_and_a_working_token(api: Api) -> None:
    response = api.request("POST", "/v1/accounts", json={"username": "Ana", "password": "password123", "display_name": "Ana Lima"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {"account", "token"}
    assert isinstance(body["token"], str) and body["token"]
    assert_account(
        body["account"],
        "ana",  # usernames are case-insensitive: kept in lower case
        display_name="Ana Lima",
        bio="",
        avatar_url=None,
        private=False,
        followers_count=0,
        following_count=0,
        posts_count=0,
    )
    me = api.ok("GET", "/v1/accounts/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me == body["account"]
    assert account(api, "ana") == body["account"]
    assert account(api, "ANA") == body["account"]

    # Without a display name, the username stands in for it.
    ben = api.ok("POST", "/v1/accounts", status=201, json={"username": "ben", "password": "password123"})
    assert_account(ben["account"], "ben", display_name="ben")
    assert int(ben["account"]["id"]) > int(body["account"]["id"])  # ids are time-sortable

    # Taken, whatever the case.
    for taken in ("ana", "ANA", "ben"):
        before = api.ok("GET", "/v1/accounts/ana")
        assert_error(api.request("POST", "/v1/accounts", json={"username": taken, "password": "other-password"}), 409)
        assert api.ok("GET", "/v1/accounts/ana") == before


def test_sign_in(api: Api) -> None:
    ana = api.sign_up("ana", "correct horse")
    response = api.request("POST", "/v1/sessions", json={"username": "ana", "password": "correct horse"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_account(body["account"], "ana", id=ana.id, posts_count=0)
    token = body["token"]
    assert isinstance(token, str) and token
    assert api.ok("GET", "/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})["id"] == ana.id

    # Usernames are case-insensitive when signing in too.
    again = api.ok("POST", "/v1/sessions", json={"username": "ANA", "password": "correct horse"})
    assert again["account"]["id"] == ana.id

    wrong = assert_error(api.request("POST", "/v1/sessions", json={"username": "ana", "password": "correct horsE"}), 401)
    unknown = assert_error(api.request("POST", "/v1/sessions", json={"username": "nobody", "password": "correct horse"}), 401)
    # The answer must not tell which usernames exist.
    assert wrong["detail"] == unknown["detail"]
    assert wrong == unknown


def test_me_and_profile_updates(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    assert_error(api.request("GET", "/v1/accounts/me"), 401)
    me = api.ok("GET", "/v1/accounts/me", ana)
    assert_account(me, "ana", id=ana.id, display_name="ana", bio="", avatar_url=None)

    patched = api.ok("PATCH", "/v1/accounts/me", ana, json={"display_name": "Ana Lima", "bio": "light chaser"})
    assert_account(patched, "ana", id=ana.id, display_name="Ana Lima", bio="light chaser", avatar_url=None)
    assert api.ok("GET", "/v1/accounts/me", ana) == patched
    assert account(api, "ana") == patched

    # A partial patch keeps the other fields.
    patched = api.ok("PATCH", "/v1/accounts/me", ana, json={"bio": "still chasing"})
    assert (patched["display_name"], patched["bio"]) == ("Ana Lima", "still chasing")

    # Avatar: one of my own photos.
    photo = api.upload(ana, jpeg(200, 200))
    with_avatar = api.ok("PATCH", "/v1/accounts/me", ana, json={"avatar_media_id": photo["id"]})
    assert isinstance(with_avatar["avatar_url"], str) and with_avatar["avatar_url"]
    assert (with_avatar["display_name"], with_avatar["bio"]) == ("Ana Lima", "still chasing")
    assert account(api, "ana")["avatar_url"] == with_avatar["avatar_url"]
    served = api.request("GET", with_avatar["avatar_url"])
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/")
    image(served.content)  # decodes

    # Someone else's photo as avatar: refused, nothing changes.
    bens_photo = api.upload(ben)
    assert_error(api.request("PATCH", "/v1/accounts/me", ana, json={"avatar_media_id": bens_photo["id"]}), 422)
    assert api.ok("GET", "/v1/accounts/me", ana) == with_avatar
    # An unknown one too.
    assert_error(api.request("PATCH", "/v1/accounts/me", ana, json={"avatar_media_id": "123456789"}), 422)
    # The avatar can be cleared again; the private flag is kept as sent.
    cleared = api.ok("PATCH", "/v1/accounts/me", ana, json={"avatar_media_id": None, "private": True})
    assert (cleared["avatar_url"], cleared["private"], cleared["display_name"]) == (None, True, "Ana Lima")
    assert account(api, "ana")["private"] is True
    with_avatar = api.ok("PATCH", "/v1/accounts/me", ana, json={"avatar_media_id": photo["id"], "private": False})
    assert with_avatar["private"] is False and with_avatar["avatar_url"]
    # Ben's profile is untouched by all this.
    assert_account(account(api, "ben"), "ben", display_name="ben", bio="", avatar_url=None)

    # Unknown accounts: 404, also for their lists.
    for missing in ("nobody", "ana2", "a" * 31, "no-such.user!"):
        assert_error(api.request("GET", f"/v1/accounts/{missing}"), 404)
    for path in ("followers", "following", "posts"):
        assert_error(api.request("GET", f"/v1/accounts/nobody/{path}"), 404)


def test_follow_and_unfollow_are_idempotent_with_exact_counts(api: Api) -> None:
    ana, ben, cy = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cy")

    for _ in range(2):
        assert api.ok("POST", "/v1/accounts/ana/follow", ben) == {"following": True}
    assert api.ok("POST", "/v1/accounts/ANA/follow", cy) == {"following": True}
    assert api.ok("POST", "/v1/accounts/ben/follow", ana) == {"following": True}
    assert_account(account(api, "ana"), "ana", followers_count=2, following_count=1)
    assert_account(account(api, "ben"), "ben", followers_count=1, following_count=1)
    assert_account(account(api, "cy"), "cy", followers_count=0, following_count=1)
    assert sorted(usernames(api.walk("/v1/accounts/ana/followers"))) == ["ben", "cy"]

    for _ in range(2):
        assert api.ok("DELETE", "/v1/accounts/ana/follow", ben) == {"following": False}
    # Unfollowing someone never followed is fine too.
    assert api.ok("DELETE", "/v1/accounts/cy/follow", ana) == {"following": False}
    assert_account(account(api, "ana"), "ana", followers_count=1, following_count=1)
    assert_account(account(api, "ben"), "ben", followers_count=1, following_count=0)
    assert_account(account(api, "cy"), "cy", followers_count=0, following_count=1)
    assert usernames(api.walk("/v1/accounts/ana/followers")) == ["cy"]
    assert usernames(api.walk("/v1/accounts/ben/following")) == []

    # Following again after unfollowing counts once.
    assert api.ok("POST", "/v1/accounts/ana/follow", ben) == {"following": True}
    assert account(api, "ana")["followers_count"] == 2

    # Oneself: 400, whatever the case; unknown: 404 (both ways).
    assert_error(api.request("POST", "/v1/accounts/ana/follow", ana), 400)
    assert_error(api.request("POST", "/v1/accounts/Ana/follow", ana), 400)
    assert_error(api.request("POST", "/v1/accounts/nobody/follow", ana), 404)
    assert_error(api.request("DELETE", "/v1/accounts/nobody/follow", ana), 404)
    assert_account(account(api, "ana"), "ana", followers_count=2, following_count=1)
    assert api.ok("GET", "/v1/accounts/me", ben)["following_count"] == 1


def test_followers_and_following_lists_newest_first(api: Api) -> None:
    ana = api.sign_up("ana")
    ben, cy, dee, eve = (api.sign_up(name) for name in ("ben", "cy", "dee", "eve"))
    # Follow in an order unlike the order the accounts were made, so that a list sorted
    # by account id cannot pass for one sorted by follow time.
    for follower in (dee, ben, eve, cy):
        api.follow(follower, "ana")
    for followee in ("eve", "ben", "dee"):
        api.follow(ana, followee)

    followers = api.ok("GET", "/v1/accounts/ana/followers")
    assert usernames(followers["items"]) == ["cy", "eve", "ben", "dee"]
    assert followers["next_cursor"] is None
    for item in followers["items"]:
        assert_account(item, item["username"])
    following = api.ok("GET", "/v1/accounts/ana/following")
    assert usernames(following["items"]) == ["dee", "ben", "eve"]
    for limit in (1, 2, 3, 100):
        assert usernames(api.walk("/v1/accounts/ana/followers", limit=limit)) == ["cy", "eve", "ben", "dee"]
        assert usernames(api.walk("/v1/accounts/ana/following", limit=limit)) == ["dee", "ben", "eve"]
    assert usernames(api.walk("/v1/accounts/ben/following")) == ["ana"]
    assert usernames(api.walk("/v1/accounts/ben/followers")) == ["ana"]
    assert usernames(api.walk("/v1/accounts/cy/followers")) == []

    # An unfollow leaves the list; a re-follow makes it the newest.
    assert api.ok("DELETE", "/v1/accounts/ana/follow", ben) == {"following": False}
    assert usernames(api.walk("/v1/accounts/ana/followers")) == ["cy", "eve", "dee"]
    api.follow(dee, "ana")  # already following: nothing changes
    assert usernames(api.walk("/v1/accounts/ana/followers")) == ["cy", "eve", "dee"]
    api.follow(ben, "ana")
    assert usernames(api.walk("/v1/accounts/ana/followers")) == ["ben", "cy", "eve", "dee"]


# --- media --------------------------------------------------------------------------------


def test_upload_answers_media_and_every_url_serves_a_cacheable_image(api: Api) -> None:
    ana = api.sign_up("ana")
    response = api.request("POST", "/v1/media", ana, files={"file": ("holiday.jpg", jpeg(1200, 800), "image/jpeg")})
    assert response.status_code == 201, response.text
    media = response.json()
    assert set(media) == MEDIA_FIELDS
    assert_id(media["id"])
    assert (media["content_type"], media["width"], media["height"]) == ("image/jpeg", 1200, 800)
    assert set(media["urls"]) == VARIANTS
    assert len(set(media["urls"].values())) == 4

    expected_sizes = {"thumb": (150, 150), "small": (320, 213), "large": (1080, 720), "original": (1200, 800)}
    for variant, url in media["urls"].items():
        served = api.request("GET", url)
        assert served.status_code == 200, f"{variant}: {served.status_code}"
        assert served.headers["content-type"] == "image/jpeg"
        assert served.headers["cache-control"] == CACHE_FOREVER
        etag = served.headers["etag"]
        assert etag
        picture = image(served.content)
        assert picture.format == "JPEG"
        width, height = picture.size
        if variant == "small":
            assert width == 320 and abs(height - 213) <= 1, picture.size
        elif variant == "large":
            assert width <= 1080 and (width, height) == expected_sizes["large"], picture.size
        else:
            assert picture.size == expected_sizes[variant], f"{variant}: {picture.size}"

        # A client holding the ETag gets 304, with no body.
        cached = api.request("GET", url, headers={"If-None-Match": etag})
        assert cached.status_code == 304, f"{variant}: {cached.status_code}"
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        # A different ETag gets the bytes again.
        other = api.request("GET", url, headers={"If-None-Match": '"0000000000000000"'})
        assert other.status_code == 200 and other.content == served.content

    # The same photo uploaded twice is two media with their own ids.
    second = api.upload(ana, jpeg(1200, 800))
    assert second["id"] != media["id"]
    # A PNG with transparency: its own content type, served as an image.
    png = api.ok(
        "POST", "/v1/media", ana, status=201, files={"file": ("a.png", _rgba_png(400, 300), "application/octet-stream")}
    )
    assert (png["content_type"], png["width"], png["height"]) == ("image/png", 400, 300)
    served = api.request("GET", png["urls"]["small"])
    assert served.status_code == 200
    assert image(served.content).size == (320, 240)
    # Unknown media: 404.
    assert_error(api.request("GET", media["urls"]["original"].replace(media["id"], "1" + media["id"])), 404)


def _rgba_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 30, 128)).save(out, "PNG")
    return out.getvalue()


def test_served_original_has_no_exif_and_orientation_is_applied(api: Api) -> None:
    ana = api.sign_up("ana")
    stored = Image.new("RGB", (400, 200), (255, 0, 0))
    stored.paste((0, 0, 255), (200, 0, 400, 200))  # red left half, blue right half
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {0x0001: "N", 0x0002: (51.0, 30.0, 0.0)}  # GPS IFD: latitude
    upload = io.BytesIO()
    stored.save(upload, "JPEG", quality=95, exif=exif.tobytes())
    data = upload.getvalue()
    assert image(data).getexif()[0x0112] == 6  # the upload really carries it

    media = api.upload(ana, data)
    assert (media["width"], media["height"]) == (200, 400)  # rotated
    for variant, url in media["urls"].items():
        served = api.request("GET", url)
        assert served.status_code == 200
        assert b"SpyCam" not in served.content, variant
        assert b"Exif\x00\x00" not in served.content, variant
        picture = image(served.content)
        assert not picture.getexif(), f"{variant} keeps EXIF {dict(picture.getexif())}"
        assert "exif" not in picture.info, variant
    original = image(api.request("GET", media["urls"]["original"]).content).convert("RGB")
    assert original.size == (200, 400)
    # Orientation 6 puts the stored left (red) half on top.
    top, bottom = original.getpixel((100, 50)), original.getpixel((100, 350))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


# --- posts ----------------------------------------------------------------------------------


def test_create_post_answers_every_field(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    uploads = [api.upload(ana, tiny_jpeg(i)) for i in range(3)]
    order = [uploads[2]["id"], uploads[0]["id"], uploads[1]["id"]]  # not upload order
    caption = "Golden hour #Sunrise #beach #SUNRISE with @Ben and @nobody_here #été"
    response = api.request("POST", "/v1/posts", ana, json={"caption": caption, "media_ids": order})
    assert response.status_code == 201, response.text
    post = response.json()
    assert set(post) >= POST_FIELDS, sorted(POST_FIELDS - set(post))
    assert_id(post["id"])
    assert post["author"]["id"] == ana.id and post["author"]["username"] == "ana"
    assert post["caption"] == caption
    assert [m["id"] for m in post["media"]] == order
    by_id = {m["id"]: m for m in uploads}
    for media in post["media"]:
        assert set(media) >= MEDIA_FIELDS and set(media["urls"]) == VARIANTS
        assert media["urls"] == by_id[media["id"]]["urls"]
        assert (media["width"], media["height"]) == (24, 16)
    assert post["tags"] == ["sunrise", "beach", "été"]
    assert post["mentions"] == ["ben", "nobody_here"]
    created = assert_rfc3339_utc(post["created_at"])
    assert abs((datetime.now(created.tzinfo) - created).total_seconds()) < 120
    assert (post["like_count"], post["comment_count"], post["liked_by_me"]) == (0, 0, False)

    # The read side answers the same post.
    read = get_post(api, post["id"], ana)
    for key in POST_FIELDS - {"author"}:
        assert read[key] == post[key], key
    assert read["author"]["id"] == ana.id and read["author"]["username"] == "ana"
    assert get_post(api, post["id"])["liked_by_me"] is False  # anonymous
    assert account(api, "ana")["posts_count"] == 1
    assert ids(api.walk("/v1/accounts/ana/posts")) == [post["id"]]
    assert account(api, "ben")["posts_count"] == 0

    # Ten photos (the most), kept in the order given; an empty caption is fine.
    ten = [api.upload(ana, tiny_jpeg(10 + i))["id"] for i in range(10)]
    ten.reverse()
    big = post_with_media(api, ana, ten)
    assert [m["id"] for m in big["media"]] == ten
    assert (big["caption"], big["tags"], big["mentions"]) == ("", [], [])
    assert [m["id"] for m in get_post(api, big["id"])["media"]] == ten
    # One photo may be in several posts of its author.
    reuse = post_with_media(api, ana, [uploads[0]["id"]], "again")
    assert [m["id"] for m in reuse["media"]] == [uploads[0]["id"]]
    assert account(api, "ana")["posts_count"] == 3
    for limit in (1, 2, 3, 100):
        assert ids(api.walk("/v1/accounts/ana/posts", limit=limit)) == [reuse["id"], big["id"], post["id"]]


def test_edit_and_delete_post(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    post = api.post(ana, "first #One #two @ben")
    path = f"/v1/posts/{post['id']}"

    edited = api.ok("PATCH", path, ana, json={"caption": "better #Three @ana"})
    assert edited["id"] == post["id"]
    assert edited["caption"] == "better #Three @ana"
    assert edited["tags"] == ["three"] and edited["mentions"] == ["ana"]
    assert [m["id"] for m in edited["media"]] == [m["id"] for m in post["media"]]
    read = get_post(api, post["id"])
    assert (read["caption"], read["tags"], read["mentions"]) == ("better #Three @ana", ["three"], ["ana"])
    assert read["created_at"] == post["created_at"]

    # Someone else may neither edit nor delete.
    assert_error(api.request("PATCH", path, ben, json={"caption": "mine now"}), 403)
    assert_error(api.request("DELETE", path, ben), 403)
    assert get_post(api, post["id"])["caption"] == "better #Three @ana"
    # Without a token: 401.
    assert_error(api.request("PATCH", path, json={"caption": "x"}), 401)
    assert_error(api.request("DELETE", path), 401)

    deleted = api.request("DELETE", path, ana)
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert_error(api.request("GET", path), 404)
    assert_error(api.request("GET", path, ana), 404)
    assert_error(api.request("DELETE", path, ana), 404)
    assert_error(api.request("PATCH", path, ana, json={"caption": "zombie"}), 404)
    assert account(api, "ana")["posts_count"] == 0
    assert api.walk("/v1/accounts/ana/posts") == []


# --- likes ------------------------------------------------------------------------------


def test_likes_are_idempotent_and_counted_exactly(api: Api) -> None:
    ana, ben, cy, dee = (api.sign_up(n) for n in ("ana", "ben", "cy", "dee"))
    post = api.post(ana)
    path = f"/v1/posts/{post['id']}"

    for _ in range(3):
        assert api.ok("POST", f"{path}/like", ben) == {"liked": True}
    assert get_post(api, post["id"], ben)["like_count"] == 1
    assert api.ok("POST", f"{path}/like", dee) == {"liked": True}
    assert api.ok("POST", f"{path}/like", ana) == {"liked": True}  # one's own post: fine
    assert api.ok("POST", f"{path}/like", dee) == {"liked": True}

    assert get_post(api, post["id"])["like_count"] == 3
    mine = {user.username: get_post(api, post["id"], user)["liked_by_me"] for user in (ana, ben, cy, dee)}
    assert mine == {"ana": True, "ben": True, "cy": False, "dee": True}
    assert get_post(api, post["id"])["liked_by_me"] is False  # anonymous

    likers = api.ok("GET", f"{path}/likes")
    assert usernames(likers["items"]) == ["ana", "dee", "ben"]  # newest first
    for item in likers["items"]:
        assert_account(item, item["username"])
    assert usernames(api.walk(f"{path}/likes", limit=1)) == ["ana", "dee", "ben"]

    for _ in range(2):
        assert api.ok("DELETE", f"{path}/like", ben) == {"liked": False}
    assert api.ok("DELETE", f"{path}/like", cy) == {"liked": False}  # never liked
    read = get_post(api, post["id"], ben)
    assert (read["like_count"], read["liked_by_me"]) == (2, False)
    assert usernames(api.walk(f"{path}/likes")) == ["ana", "dee"]
    # Like again after unliking: counted once more, newest again.
    assert api.ok("POST", f"{path}/like", ben) == {"liked": True}
    assert get_post(api, post["id"], ben)["like_count"] == 3
    assert usernames(api.walk(f"{path}/likes")) == ["ben", "ana", "dee"]

    # A post nobody liked answers an empty list; unknown posts 404.
    other = api.post(ana, "quiet")
    assert api.ok("GET", f"/v1/posts/{other['id']}/likes") == {"items": [], "next_cursor": None}
    assert get_post(api, other["id"])["like_count"] == 0
    missing = str(int(post["id"]) + 12345)
    assert_error(api.request("POST", f"/v1/posts/{missing}/like", ben), 404)
    assert_error(api.request("GET", f"/v1/posts/{missing}/likes"), 404)
    # A deleted post can no longer be liked.
    api.ok("DELETE", f"/v1/posts/{other['id']}", ana, status=204)
    assert_error(api.request("POST", f"/v1/posts/{other['id']}/like", ben), 404)


# --- comments --------------------------------------------------------------------------


def test_comments_oldest_first_and_who_may_delete(api: Api) -> None:
    ana, ben, cy = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cy")
    post = api.post(ana)
    path = f"/v1/posts/{post['id']}/comments"

    response = api.request("POST", path, ben, json={"text": "  lovely light  "})
    assert response.status_code == 201, response.text
    first = response.json()
    assert set(first) >= COMMENT_FIELDS
    assert_id(first["id"])
    assert first["post_id"] == post["id"]
    assert first["author"]["id"] == ben.id and first["author"]["username"] == "ben"
    assert first["text"].strip() == "lovely light"
    assert_rfc3339_utc(first["created_at"])

    second = api.ok("POST", path, cy, status=201, json={"text": "where is this?"})
    third = api.ok("POST", path, ana, status=201, json={"text": "Lisbon 🌅"})
    fourth = api.ok("POST", path, ben, status=201, json={"text": "thanks"})
    assert int(first["id"]) < int(second["id"]) < int(third["id"]) < int(fourth["id"])

    listed = api.ok("GET", path)
    assert ids(listed["items"]) == [first["id"], second["id"], third["id"], fourth["id"]]  # oldest first
    assert [c["text"] for c in listed["items"][1:]] == ["where is this?", "Lisbon 🌅", "thanks"]
    for comment in listed["items"]:
        assert set(comment) >= COMMENT_FIELDS
        assert comment["post_id"] == post["id"]
    assert listed["items"][2]["author"]["username"] == "ana"
    for limit in (1, 3):
        assert ids(api.walk(path, limit=limit)) == ids(listed["items"])
    assert get_post(api, post["id"])["comment_count"] == 4

    # A third person may not delete; nothing changes.
    assert_error(api.request("DELETE", f"/v1/comments/{first['id']}", cy), 403)
    assert_error(api.request("DELETE", f"/v1/comments/{first['id']}"), 401)
    assert get_post(api, post["id"])["comment_count"] == 4
    # The comment's author may.
    assert api.request("DELETE", f"/v1/comments/{first['id']}", ben).status_code == 204
    # The post's author may delete anyone's comment.
    assert api.request("DELETE", f"/v1/comments/{second['id']}", ana).status_code == 204
    # Gone is gone.
    assert_error(api.request("DELETE", f"/v1/comments/{first['id']}", ben), 404)
    assert ids(api.walk(path)) == [third["id"], fourth["id"]]
    assert get_post(api, post["id"])["comment_count"] == 2

    # Unknown posts: 404 on comment and on list.
    missing = str(int(post["id"]) + 12345)
    assert_error(api.request("POST", f"/v1/posts/{missing}/comments", ben, json={"text": "hello?"}), 404)
    assert_error(api.request("GET", f"/v1/posts/{missing}/comments"), 404)
    # A deleted post takes no more comments.
    api.ok("DELETE", f"/v1/posts/{post['id']}", ana, status=204)
    assert_error(api.request("POST", path, ben, json={"text": "too late"}), 404)
    assert_error(api.request("GET", path), 404)


# --- feed --------------------------------------------------------------------------------


def test_feed_holds_followed_accounts_posts_newest_first(api: Api) -> None:
    ana, ben, cy, dee = (api.sign_up(n) for n in ("ana", "ben", "cy", "dee"))
    assert_error(api.request("GET", "/v1/feed"), 401)
    assert api.ok("GET", "/v1/feed", ana) == {"items": [], "next_cursor": None}

    old_ben = api.post(ben, "before the follow")
    api.follow(ana, "ben")
    api.follow(ana, "cy")
    b1 = api.post(ben, "b1")
    c1 = api.post(cy, "c1")
    own = api.post(ana, "my own")
    d1 = api.post(dee, "not followed")
    b2 = api.post(ben, "b2")

    feed = api.ok("GET", "/v1/feed", ana)
    # Following backfills the followee's earlier posts.
    assert ids(feed["items"]) == [b2["id"], c1["id"], b1["id"], old_ben["id"]]
    assert feed["next_cursor"] is None
    assert own["id"] not in ids(feed["items"]) and d1["id"] not in ids(feed["items"])
    for post in feed["items"]:
        assert set(post) >= POST_FIELDS
    # Others' feeds are their own.
    assert api.walk("/v1/feed", ben) == []
    api.follow(dee, "ana")
    assert ids(api.walk("/v1/feed", dee)) == [own["id"]]

    # A like shows in the feed items, with liked_by_me for the reader.
    api.ok("POST", f"/v1/posts/{c1['id']}/like", ana)
    item = next(p for p in api.ok("GET", "/v1/feed", ana)["items"] if p["id"] == c1["id"])
    assert (item["like_count"], item["liked_by_me"]) == (1, True)

    # A deleted post disappears from the feed.
    api.ok("DELETE", f"/v1/posts/{b1['id']}", ben, status=204)
    assert ids(api.walk("/v1/feed", ana)) == [b2["id"], c1["id"], old_ben["id"]]
    # Unfollowing removes the followee's posts; new posts of theirs do not arrive.
    assert api.ok("DELETE", "/v1/accounts/ben/follow", ana) == {"following": False}
    assert ids(api.walk("/v1/feed", ana)) == [c1["id"]]
    b3 = api.post(ben, "b3")
    c2 = api.post(cy, "c2")
    assert ids(api.walk("/v1/feed", ana)) == [c2["id"], c1["id"]]
    # Following again brings their (remaining) posts back, in order.
    api.follow(ana, "ben")
    assert ids(api.walk("/v1/feed", ana)) == [c2["id"], b3["id"], b2["id"], c1["id"], old_ben["id"]]


def test_feed_pagination_returns_every_post_exactly_once(api: Api) -> None:
    reader = api.sign_up("reader")
    authors = [api.sign_up(name) for name in ("ana", "ben", "cy")]
    stranger = api.sign_up("stranger")
    for author in authors:
        api.follow(reader, author.username)
    made: list[str] = []
    for i in range(25):
        author = authors[(i * 7) % 3]
        made.append(post_with_media(api, author, [api.upload(author, tiny_jpeg(i))["id"]], f"post {i}")["id"])
        if i % 6 == 0:
            post_with_media(api, stranger, [api.upload(stranger, tiny_jpeg(100 + i))["id"]], "unseen")
    expected = list(reversed(made))

    one_page = api.ok("GET", "/v1/feed", reader, params={"limit": 100})
    assert ids(one_page["items"]) == expected
    assert one_page["next_cursor"] is None
    default_page = api.ok("GET", "/v1/feed", reader)
    assert ids(default_page["items"]) == expected[:20]  # default limit 20
    assert isinstance(default_page["next_cursor"], str)

    for limit in (1, 3, 7, 25, 100):
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            body = api.ok("GET", "/v1/feed", reader, params=params)
            assert len(body["items"]) <= limit
            pages.append(ids(body["items"]))
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert len(pages) <= 30, "next_cursor never ends"
        walked = [post_id for page in pages for post_id in page]
        assert walked == expected, f"limit {limit}"
        assert all(len(page) == limit for page in pages[:-1] if page), f"limit {limit}: short page before the end"
    assert newest_first(one_page["items"])
    stamps = [assert_rfc3339_utc(p["created_at"]) for p in one_page["items"]]
    assert stamps == sorted(stamps, reverse=True)


LIST_PATHS = [
    "/v1/accounts/ana/followers",
    "/v1/accounts/ana/following",
    "/v1/accounts/ana/posts",
    "/v1/posts/{post}/likes",
    "/v1/posts/{post}/comments",
    "/v1/feed",
]


def test_every_list_rejects_bad_limits_and_cursors(api: Api) -> None:
    ana = api.sign_up("ana")
    post = api.post(ana)
    for template in LIST_PATHS:
        path = template.format(post=post["id"])
        good = api.ok("GET", path, ana, params={"limit": 1})
        assert set(good) == {"items", "next_cursor"}, path
        for limit in (100, 1):
            api.ok("GET", path, ana, params={"limit": limit})
        for limit in ("0", "101", "-1", "ten", "1.5"):
            assert_error(api.request("GET", path, ana, params={"limit": limit}), 422)
        for cursor in ("garbage!", "bm90LWEtY3Vyc29y", "c1:12", "YzE6LTU", "%%%"):
            assert_error(api.request("GET", path, ana, params={"cursor": cursor}), 400)


# --- consistency ------------------------------------------------------------------------


def test_every_successful_command_carries_a_consistency_token(api: Api) -> None:
    def token_of(response) -> str:
        assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        value = response.headers.get(TOKEN)
        assert value, f"{response.request.method} {response.request.url.path} answered no {TOKEN}"
        return value

    sign_up = api.request("POST", "/v1/accounts", json={"username": "ana", "password": "password123"})
    token_of(sign_up)
    ana = User(sign_up.json()["account"]["id"], "ana", sign_up.json()["token"])
    ben = api.sign_up("ben")
    media = api.request("POST", "/v1/media", ana, files={"file": ("p.jpg", jpeg(), "image/jpeg")})
    token_of(media)
    post = api.request("POST", "/v1/posts", ana, json={"caption": "hi", "media_ids": [media.json()["id"]]})
    token_of(post)
    post_id = post.json()["id"]
    comment = api.request("POST", f"/v1/posts/{post_id}/comments", ben, json={"text": "nice"})
    token_of(comment)
    commands = [
        ("PATCH", "/v1/accounts/me", ana, {"json": {"bio": "hello"}}),
        ("PATCH", "/v1/accounts/me", ana, {"json": {"bio": "hello"}}),  # no change: still answers one
        ("POST", "/v1/accounts/ana/follow", ben, {}),
        ("POST", "/v1/accounts/ana/follow", ben, {}),  # idempotent repeat
        ("DELETE", "/v1/accounts/ana/follow", ben, {}),
        ("DELETE", "/v1/accounts/ana/follow", ben, {}),
        ("PATCH", f"/v1/posts/{post_id}", ana, {"json": {"caption": "hi again"}}),
        ("PATCH", f"/v1/posts/{post_id}", ana, {"json": {"caption": "hi again"}}),
        ("POST", f"/v1/posts/{post_id}/like", ben, {}),
        ("POST", f"/v1/posts/{post_id}/like", ben, {}),
        ("DELETE", f"/v1/posts/{post_id}/like", ben, {}),
        ("DELETE", f"/v1/posts/{post_id}/like", ben, {}),
        ("DELETE", f"/v1/comments/{comment.json()['id']}", ben, {}),
        ("DELETE", f"/v1/posts/{post_id}", ana, {}),
    ]
    for method, path, user, kwargs in commands:
        token = token_of(api.request(method, path, user, **kwargs))
        # The token is accepted back by a read.
        read = api.request("GET", "/v1/accounts/ana", headers={TOKEN: token})
        assert read.status_code == 200, read.text
        assert read.headers.get("x-consistency") != "stale"


def test_a_command_answers_a_session_token_covering_the_token_it_was_sent(client, api: Api) -> None:
    """A follow, then a like sending the follow's token: the like's answer covers both,
    so a feed read with it alone sees the followed account's posts (backfilled by the
    follow), however far the like's own partition is from the follow's."""
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    posts = [api.post(ana, caption=f"post {i}") for i in range(3)]
    carol = api.sign_up("carol")
    carols = api.post(carol, caption="carol's")
    followed = client.post("/v1/accounts/ana/follow", headers=ben.auth)
    first = ConsistencyToken.decode(followed.headers[TOKEN])
    liked = client.post(f"/v1/posts/{carols['id']}/like", headers={**ben.auth, TOKEN: followed.headers[TOKEN]})
    assert liked.status_code == 200, liked.text
    session = ConsistencyToken.decode(liked.headers[TOKEN])
    for partition, position in first.positions.items():
        assert session.positions[partition] >= position
    assert session != first  # ...and the like's own event too
    feed = client.get("/v1/feed", headers={**ben.auth, TOKEN: liked.headers[TOKEN]})
    assert feed.headers.get("x-consistency") != "stale"
    assert [p["id"] for p in feed.json()["items"]] == [p["id"] for p in reversed(posts)]


def test_a_read_sending_the_token_back_sees_the_write(client, api: Api) -> None:
    ana = api.sign_up("ana")
    post = api.post(ana)
    likers = [api.sign_up(f"fan{i}") for i in range(3)]
    path = f"/v1/posts/{post['id']}"
    for count, fan in enumerate(likers, start=1):
        liked = client.post(f"{path}/like", headers=fan.auth)
        assert liked.status_code == 200
        token = liked.headers[TOKEN]
        read = client.get(path, headers={**fan.auth, TOKEN: token})
        assert read.status_code == 200
        assert read.headers.get("x-consistency") != "stale"
        body = read.json()
        assert (body["like_count"], body["liked_by_me"]) == (count, True)

        commented = client.post(f"{path}/comments", headers=fan.auth, json={"text": f"comment {count}"})
        assert commented.status_code == 201
        comments = client.get(f"{path}/comments", params={"limit": 100}, headers={TOKEN: commented.headers[TOKEN]})
        assert [c["text"] for c in comments.json()["items"]][-1] == f"comment {count}"
        assert len(comments.json()["items"]) == count

    # A follow, then the follower counts and the feed, each read with its token.
    followed = client.post("/v1/accounts/ana/follow", headers=likers[0].auth)
    read = client.get("/v1/accounts/ana", headers={TOKEN: followed.headers[TOKEN]})
    assert read.json()["followers_count"] == 1
    feed = client.get("/v1/feed", headers={**likers[0].auth, TOKEN: followed.headers[TOKEN]})
    assert [p["id"] for p in feed.json()["items"]] == [post["id"]]
    # A post, then the author's profile.
    media = client.post("/v1/media", headers=ana.auth, files={"file": ("p.jpg", jpeg(), "image/jpeg")})
    created = client.post("/v1/posts", headers=ana.auth, json={"caption": "two", "media_ids": [media.json()["id"]]})
    grid = client.get("/v1/accounts/ana/posts", headers={TOKEN: created.headers[TOKEN]})
    assert [p["id"] for p in grid.json()["items"]] == [created.json()["id"], post["id"]]
