"""Hashtag feeds, on every backend."""
from __future__ import annotations

from tests.support import Api


def ids(items: list[dict]) -> list[str]:
    return [i["id"] for i in items]


def test_tag_feed_newest_first_moves_on_edit_and_forgets_deleted_posts(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    first = api.post(ana, "morning #Sunrise #beach")
    second = api.post(ben, "again #sunrise")
    other = api.post(ben, "no tags here")
    third = api.post(ana, "#SUNRISE and #Été")

    assert ids(api.walk("/v1/tags/sunrise/posts", limit=1)) == [third["id"], second["id"], first["id"]]
    assert ids(api.walk("/v1/tags/%23Sunrise/posts", limit=2)) == [third["id"], second["id"], first["id"]]
    assert ids(api.walk("/v1/tags/été/posts")) == [third["id"]]
    assert other["id"] not in ids(api.walk("/v1/tags/sunrise/posts", limit=100))
    feed = api.ok("GET", "/v1/tags/beach/posts", ben)
    assert ids(feed["items"]) == [first["id"]] and feed["items"][0]["author"]["username"] == "ana"

    # An edit moves the post between tag feeds.
    api.ok("PATCH", f"/v1/posts/{first['id']}", ana, json={"caption": "evening #sunset"})
    assert ids(api.walk("/v1/tags/sunrise/posts")) == [third["id"], second["id"]]
    assert ids(api.walk("/v1/tags/sunset/posts")) == [first["id"]]
    assert api.walk("/v1/tags/beach/posts") == []

    # A deleted post leaves every tag feed it was in.
    api.ok("DELETE", f"/v1/posts/{third['id']}", ana, status=204)
    assert ids(api.walk("/v1/tags/sunrise/posts")) == [second["id"]]
    assert api.walk("/v1/tags/été/posts") == []


def test_unknown_and_invalid_tags(api: Api) -> None:
    assert api.ok("GET", "/v1/tags/nothing_here/posts") == {"items": [], "next_cursor": None}
    for bad in ("a-b", "123", "%20"):
        response = api.request("GET", f"/v1/tags/{bad}/posts")
        assert response.status_code == 404 and "hashtag" in response.json()["detail"], bad
    assert api.request("GET", "/v1/tags/sun/posts", params={"limit": 0}).status_code == 422
