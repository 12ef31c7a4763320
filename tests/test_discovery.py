"""Search, explore, suggestions and follow paths over HTTP, on every backend."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from streams.event_store import ConsistencyToken
from tests.support import Api, User


class MergingApi(Api):
    """A client that reads after *all* its writes: a token only names the log partitions
    of its own command, so a client that wrote to several streams sends the merge."""

    def request(self, method: str, path: str, user: User | None = None, **kwargs: Any) -> httpx.Response:
        before = self.token
        response = super().request(method, path, user, **kwargs)
        if before and self.token and self.token != before:
            merged = ConsistencyToken.decode(before).merge(ConsistencyToken.decode(self.token))
            self.token = merged.encode()
        # A stale read answers from read models that had not caught up: say so, rather
        # than fail later on an answer that is merely old.
        assert response.headers.get("x-consistency") != "stale", f"{method} {path}: the read models did not catch up in time"
        return response


@pytest.fixture
def api(client: TestClient) -> Api:
    return MergingApi(client)


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["username"] for i in items]


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items]


def search(api: Api, q: str, type: str = "accounts", limit: int = 100, user: User | None = None) -> list[dict[str, Any]]:
    """Every result, walking the pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": q, "type": type, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = api.ok("GET", "/v1/search", user, params=params)
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def rename(api: Api, user: User, display_name: str) -> None:
    api.ok("PATCH", "/v1/accounts/me", user, json={"display_name": display_name})


def test_search_accounts_exact_username_first_then_most_followed(api: Api) -> None:
    ana, anabel, anatole, bob, carl, dora = (api.sign_up(n) for n in ("ana", "anabel", "anatole", "bob", "carl", "dora"))
    rename(api, bob, "Élodie Anand")
    rename(api, dora, "Zoë Ánàstasia Lima")
    api.follow(bob, "anatole")
    api.follow(carl, "anatole")
    api.follow(bob, "anabel")

    # The exact username first, then by followers: anatole 2, anabel 1, then the ones
    # matched by a display-name word (0 followers) by username.
    expected = ["ana", "anatole", "anabel", "bob", "dora"]
    for q in ("ana", "ANA", "@ana", " Ana "):
        assert names(search(api, q)) == expected, q
    for limit in (1, 2, 3):
        assert names(search(api, "ana", limit=limit)) == expected, limit
    assert names(search(api, "anat")) == ["anatole"]
    # Accents and case are folded both ways; the whole display name matches too.
    assert names(search(api, "elodie")) == ["bob"]
    assert names(search(api, "ÉLO")) == ["bob"]
    assert names(search(api, "zoe anastasia")) == ["dora"]
    assert names(search(api, "lima")) == ["dora"]
    assert search(api, "zzz") == []
    found = search(api, "anatole")[0]
    assert found["followers_count"] == 2 and found["id"] == anatole.id

    # Followers move an account up; a new display name moves it between prefixes.
    api.follow(carl, "anabel")
    api.follow(dora, "anabel")
    assert names(search(api, "ana")) == ["ana", "anabel", "anatole", "bob", "dora"]
    api.ok("DELETE", "/v1/accounts/anabel/follow", dora)
    api.ok("DELETE", "/v1/accounts/anabel/follow", carl)
    api.ok("DELETE", "/v1/accounts/anabel/follow", carl)  # a repeat changes nothing
    assert names(search(api, "ana")) == expected
    rename(api, bob, "Robert")
    assert names(search(api, "ana")) == ["ana", "anatole", "anabel", "dora"]
    assert names(search(api, "rob")) == ["bob"]
    assert search(api, "elodie") == []
    assert ana.username == "ana"


def test_search_tags_by_prefix_with_exact_post_counts(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    first = api.post(ana, "#Sunset at the #beach")
    api.post(ben, "#sunset again #Été")
    third = api.post(ben, "#sunrise")
    assert search(api, "sun", "tags") == [{"name": "sunrise", "post_count": 1}, {"name": "sunset", "post_count": 2}]
    assert search(api, "#SUN", "tags", limit=1) == [{"name": "sunrise", "post_count": 1}, {"name": "sunset", "post_count": 2}]
    assert search(api, "sunset", "tags") == [{"name": "sunset", "post_count": 2}]
    assert search(api, "ete", "tags") == [{"name": "été", "post_count": 1}]
    assert search(api, "ÉT", "tags") == [{"name": "été", "post_count": 1}]
    assert search(api, "moon", "tags") == []

    # An edit moves the post between tags; a tag no post carries is no longer found.
    api.ok("PATCH", f"/v1/posts/{first['id']}", ana, json={"caption": "#sunrise and #moon"})
    assert search(api, "sun", "tags") == [{"name": "sunrise", "post_count": 2}, {"name": "sunset", "post_count": 1}]
    assert search(api, "b", "tags") == []
    assert search(api, "moon", "tags") == [{"name": "moon", "post_count": 1}]
    api.ok("DELETE", f"/v1/posts/{third['id']}", ben, status=204)
    assert search(api, "sunr", "tags") == [{"name": "sunrise", "post_count": 1}]


def test_search_posts_by_caption_words(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    golden = api.post(ana, "Golden hour at the BEACH")
    day = api.post(ben, "beach day #beach")
    dessert = api.post(ben, "Crème brûlée, obviously")
    assert ids(search(api, "beach", "posts")) == [day["id"], golden["id"]]
    assert ids(search(api, "beach", "posts", limit=1)) == [day["id"], golden["id"]]
    assert ids(search(api, "golden BEACH", "posts")) == [golden["id"]]
    assert ids(search(api, "creme brulee", "posts")) == [dessert["id"]]
    assert ids(search(api, "CRÈME", "posts")) == [dessert["id"]]
    assert search(api, "beach dessert", "posts") == []
    found = search(api, "obviously", "posts", user=ben)[0]
    assert found["author"]["username"] == "ben" and found["caption"] == "Crème brûlée, obviously"

    api.ok("PATCH", f"/v1/posts/{golden['id']}", ana, json={"caption": "Golden hour in the hills"})
    assert ids(search(api, "beach", "posts")) == [day["id"]]
    assert ids(search(api, "hills", "posts")) == [golden["id"]]
    api.ok("DELETE", f"/v1/posts/{day['id']}", ben, status=204)
    assert search(api, "beach", "posts") == []


def test_search_rejects_bad_queries_precisely(api: Api) -> None:
    cases = [
        ({}, 422, "q must not be empty"),
        ({"q": ""}, 422, "q must not be empty"),
        ({"q": "   "}, 422, "q must not be empty"),
        ({"q": "x" * 101}, 422, "101 characters"),
        ({"q": "@"}, 422, "nothing to look for"),
        ({"q": "a-b", "type": "tags"}, 422, "hashtag search"),
        ({"q": "#", "type": "tags"}, 422, "hashtag search"),
        ({"q": "!!! ...", "type": "posts"}, 422, "no words"),
        ({"q": " ".join("abcdefghi"), "type": "posts"}, 422, "9 words"),
        ({"q": "ana", "type": "people"}, 422, "type"),
        ({"q": "ana", "limit": 0}, 422, "limit"),
        ({"q": "ana", "limit": 101}, 422, "limit"),
        ({"q": "ana", "cursor": "bogus"}, 400, "cursor"),
        ({"q": "beach", "type": "posts", "cursor": "bogus"}, 400, "cursor"),
    ]
    for params, status, words in cases:
        response = api.request("GET", "/v1/search", params=params)
        assert response.status_code == status, (params, response.text)
        assert words in str(response.json()["detail"]), (params, response.text)
    # A well-formed query that finds nothing is an empty list.
    assert api.ok("GET", "/v1/search", params={"q": "nobody"}) == {"items": [], "next_cursor": None}


def test_explore_ranks_recent_engagement_and_hides_your_own_posts(api: Api) -> None:
    ana, ben, cat = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cat")
    quiet = api.post(cat, "quiet")
    loved = api.post(ana, "loved", photos=3)
    talked = api.post(ben, "talked about")
    api.ok("POST", f"/v1/posts/{loved['id']}/like", ben)
    api.ok("POST", f"/v1/posts/{loved['id']}/like", cat)
    wow = api.ok("POST", f"/v1/posts/{loved['id']}/comments", ben, status=201, json={"text": "wow"})
    api.ok("POST", f"/v1/posts/{talked['id']}/comments", cat, status=201, json={"text": "hm"})
    # The author's own like and comment do not count.
    api.ok("POST", f"/v1/posts/{quiet['id']}/like", cat)
    api.ok("POST", f"/v1/posts/{quiet['id']}/comments", cat, status=201, json={"text": "me"})

    everyone = [loved["id"], talked["id"], quiet["id"]]
    for limit in (1, 2, 20):
        assert ids(api.walk("/v1/explore", limit=limit)) == everyone, limit
    assert ids(api.walk("/v1/explore", ana)) == [talked["id"], quiet["id"]]
    assert ids(api.walk("/v1/explore", cat)) == [loved["id"], talked["id"]]
    carousel = api.ok("GET", "/v1/explore", params={"limit": 1})["items"][0]
    assert [m["id"] for m in carousel["media"]] == [m["id"] for m in loved["media"]] and len(carousel["media"]) == 3
    assert carousel["like_count"] == 2 and carousel["comment_count"] == 1

    # Taking engagement back lowers a post; a deleted post leaves explore.
    # (Without its likes and comment, loved scores as little as quiet: only the first
    # place is certain then; equal scores order by time, to the millisecond.)
    api.ok("DELETE", f"/v1/posts/{loved['id']}/like", ben)
    api.ok("DELETE", f"/v1/posts/{loved['id']}/like", cat)
    api.ok("DELETE", f"/v1/comments/{wow['id']}", ben, status=204)
    lowered = ids(api.walk("/v1/explore"))
    assert lowered[0] == talked["id"] and sorted(lowered) == sorted(everyone), lowered
    api.ok("DELETE", f"/v1/posts/{talked['id']}", ben, status=204)
    assert ids(api.walk("/v1/explore")) == [loved["id"], quiet["id"]]
    assert api.request("GET", "/v1/explore", params={"cursor": "nope"}).status_code == 400
    assert api.request("GET", "/v1/explore", params={"limit": 0}).status_code == 422


def test_suggestions_are_followed_by_the_people_you_follow(api: Api) -> None:
    ana, ben, cat, dan, eve, fay = (api.sign_up(n) for n in ("ana", "ben", "cat", "dan", "eve", "fay"))
    api.follow(ana, "ben")
    api.follow(ana, "cat")
    api.follow(ana, "fay")
    api.follow(ben, "dan")
    api.follow(ben, "eve")
    api.follow(ben, "ana")  # never suggest oneself
    api.follow(cat, "dan")
    api.follow(cat, "fay")  # nor someone already followed
    found = api.walk("/v1/accounts/ana/suggestions", limit=1)
    assert [(s["username"], s["followed_by_count"]) for s in found] == [("dan", 2), ("eve", 1)]
    assert found[0]["id"] == dan.id and found[0]["followers_count"] == 2
    assert api.walk("/v1/accounts/eve/suggestions") == []
    assert api.request("GET", "/v1/accounts/nobody/suggestions").status_code == 404
    api.follow(ana, "dan")
    assert names(api.walk("/v1/accounts/ANA/suggestions", ana)) == ["eve"]
    assert eve.username == "eve"


def test_follow_path_is_the_shortest_chain_within_the_depth(api: Api) -> None:
    ana, ben, cat, dan, eve = (api.sign_up(n) for n in ("ana", "ben", "cat", "dan", "eve"))
    for a, b in ((ana, "ben"), (ben, "cat"), (cat, "dan"), (ana, "eve"), (eve, "cat")):
        api.follow(a, b)

    def path(**params: Any) -> dict[str, Any]:
        return api.ok("GET", "/v1/graph/path", params=params)

    found = path(**{"from": "ana", "to": "dan"})
    assert found["found"] is True and found["length"] == 3 and found["complete"] is True
    assert names(found["path"])[0] == "ana" and names(found["path"])[2:] == ["cat", "dan"]
    assert names(found["path"])[1] in ("ben", "eve")
    assert found["from"]["username"] == "ana" and found["to"]["username"] == "dan"
    assert path(**{"from": "ana", "to": "cat", "max_depth": 2})["length"] == 2

    short = path(**{"from": "ana", "to": "dan", "max_depth": 2})
    assert (short["found"], short["length"], short["path"]) == (False, None, [])
    assert "cannot reach dan in at most 2 follows" in short["detail"]
    backwards = path(**{"from": "dan", "to": "ana"})
    assert backwards["found"] is False and "cannot reach" in backwards["detail"]
    itself = path(**{"from": "ana", "to": "ana"})
    assert (itself["found"], itself["length"], names(itself["path"])) == (True, 0, ["ana"])

    for params, status, words in (
        ({"from": "ana", "to": "nobody"}, 404, "nobody"),
        ({"from": "Not A Name", "to": "ana"}, 404, "Not A Name"),
        ({"from": "ana", "to": "dan", "max_depth": 0}, 422, "max_depth"),
        ({"from": "ana", "to": "dan", "max_depth": 7}, 422, "max_depth"),
        ({"from": "ana", "to": "dan", "max_depth": "deep"}, 422, "max_depth"),
        ({"to": "dan"}, 422, "from"),
    ):
        response = api.request("GET", "/v1/graph/path", params=params)
        assert response.status_code == status, (params, response.text)
        assert words in response.text, (params, response.text)


@pytest.mark.parametrize("caption,tag", [("#नमस्ते दुनिया", "नमस्ते"), ("#ภาษาไทย", "ภาษาไทย"), ("#Ünïcode_2", "ünïcode_2")])
def test_hashtags_keep_unicode_words_whole(api: Api, caption: str, tag: str) -> None:
    ana = api.sign_up("ana")
    post = api.post(ana, caption)
    assert post["tags"] == [tag]
    assert ids(api.walk(f"/v1/tags/{tag}/posts")) == [post["id"]]
    assert search(api, tag, "tags") == [{"name": tag, "post_count": 1}]


def test_discovery_hides_private_posts_and_blocked_accounts(api: Api) -> None:
    ana, ben, cat = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cat")
    secret = api.post(ben, "secret beach")
    open_post = api.post(cat, "open beach")
    api.ok("PATCH", "/v1/accounts/me", ben, json={"private": True})
    # A private account is found by name; its posts only by approved followers.
    assert names(search(api, "be", user=ana)) == ["ben"]
    assert ids(search(api, "beach", "posts", user=ana)) == [open_post["id"]]
    assert ids(api.walk("/v1/explore", ana)) == [open_post["id"]]
    assert ids(search(api, "beach", "posts", user=ben)) == [open_post["id"], secret["id"]]
    # A block hides each from the other, as accounts and as authors.
    api.ok("POST", "/v1/accounts/cat/block", ana)
    assert search(api, "cat", user=ana) == [] and search(api, "ana", user=cat) == []
    assert ids(api.walk("/v1/explore", ana)) == [] and ids(search(api, "beach", "posts", user=ana)) == []
    assert names(search(api, "cat", user=ben)) == ["cat"]


def test_comment_hashtags_and_mentions_link_but_do_not_list_the_post_on_tag_pages(api: Api) -> None:
    """A comment's #tags and @usernames are parsed as a caption's (the clients link them),
    but only the caption's tags list a post on a tag page: a commenter cannot file someone
    else's post under a tag (Instagram does the same)."""
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    post = api.post(ana, "at the #beach")
    path = f"/v1/posts/{post['id']}/comments"
    added = api.ok("POST", path, ben, status=201, json={"text": "#Été vibes @ANA, not #2024 nor a&#39;b"})
    assert (added["tags"], added["mentions"]) == (["été"], ["ana"])
    listed = api.walk(path)
    assert [(c["tags"], c["mentions"]) for c in listed] == [(["été"], ["ana"])]
    assert api.walk("/v1/tags/été/posts") == []
    assert search(api, "ete", "tags") == []
    assert ids(api.walk("/v1/tags/beach/posts")) == [post["id"]]
