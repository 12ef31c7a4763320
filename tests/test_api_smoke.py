from __future__ import annotations

from tests.support import Api


def test_sign_up_post_follow_feed_like_comment(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    api.follow(ben, "ana")
    post = api.post(ana, "first light #Sunrise @ben", photos=2)
    assert post["tags"] == ["sunrise"] and post["mentions"] == ["ben"] and len(post["media"]) == 2
    assert api.ok("POST", f"/v1/posts/{post['id']}/like", ben) == {"liked": True}
    api.ok("POST", f"/v1/posts/{post['id']}/comments", ben, status=201, json={"text": "lovely"})
    feed = api.ok("GET", "/v1/feed", ben)
    assert [p["id"] for p in feed["items"]] == [post["id"]]
    assert feed["items"][0]["like_count"] == 1 and feed["items"][0]["comment_count"] == 1
    assert feed["items"][0]["liked_by_me"] is True


def test_refused_command_appends_nothing(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    before = log_size()
    response = api.request("POST", "/v1/posts", ana, json={"caption": "x", "media_ids": ["123"]})
    assert response.status_code == 422
    assert log_size() == before
