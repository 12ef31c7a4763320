"""Notifications, mentions and direct messages over HTTP, on both backends (issue 6)."""
from __future__ import annotations

from typing import Any

from tests.support import Api, User


def notifications(api: Api, user: User) -> list[dict[str, Any]]:
    return api.walk("/v1/notifications", user, limit=3)


def unread(api: Api, user: User) -> dict[str, int]:
    return api.ok("GET", "/v1/notifications/unread", user)


def names(item: dict[str, Any]) -> list[str]:
    return [a["username"] for a in item["actors"]]


def test_likes_of_one_post_are_one_notification_with_exact_actors(api: Api) -> None:
    ana = api.sign_up("ana")
    fans = [api.sign_up(f"fan{i}") for i in range(10)]
    post = api.post(ana, "sunrise")
    for fan in fans:
        api.ok("POST", f"/v1/posts/{post['id']}/like", fan)
    api.ok("POST", f"/v1/posts/{post['id']}/like", fans[0])  # liking twice changes nothing
    api.ok("POST", f"/v1/posts/{post['id']}/like", ana)  # nothing for one's own actions

    (group,) = notifications(api, ana)
    assert group["kind"] == "like" and group["post"]["id"] == post["id"]
    assert group["actors_count"] == 10
    assert names(group) == [f"fan{i}" for i in range(9, 1, -1)]  # the newest 8, newest first
    assert group["read"] is False
    assert unread(api, ana)["notifications"] == 1

    # Un-liking removes the actor; the last one out removes the notification.
    api.ok("DELETE", f"/v1/posts/{post['id']}/like", fans[9])
    (group,) = notifications(api, ana)
    assert group["actors_count"] == 9 and "fan9" not in names(group) and names(group)[-1] == "fan1"
    for fan in fans[:9]:
        api.ok("DELETE", f"/v1/posts/{post['id']}/like", fan)
    assert notifications(api, ana) == []
    assert notifications(api, fans[0]) == []


def test_comment_follow_and_mentions_notify_and_read_marks_them(api: Api) -> None:
    ana, ben, cy = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cy")
    api.follow(ben, "ana")
    post = api.post(ana, "with @Ben and @cy and @ana and @nobody_here")
    comment = api.ok("POST", f"/v1/posts/{post['id']}/comments", ben, status=201, json={"text": "nice, @cy! and @ana"})
    api.ok("POST", f"/v1/posts/{post['id']}/comments", ana, status=201, json={"text": "thanks"})  # own post: nothing

    kinds = [(n["kind"], names(n)) for n in notifications(api, ana)]
    assert kinds == [("comment", ["ben"]), ("follow", ["ben"])]  # ana's own mention of herself: nothing
    ben_items = notifications(api, ben)
    assert [(n["kind"], names(n), n["post"]["id"]) for n in ben_items] == [("mention", ["ana"], post["id"])]
    cy_items = notifications(api, cy)
    assert [(n["kind"], names(n)) for n in cy_items] == [("mention", ["ben"]), ("mention", ["ana"])]
    assert cy_items[0]["comment"] == {"id": comment["id"], "text": "nice, @cy! and @ana"}
    assert unread(api, cy)["notifications"] == 2

    marked = api.ok("POST", "/v1/notifications/read", cy)
    assert marked["up_to"].isdigit()
    assert unread(api, cy)["notifications"] == 0
    assert all(n["read"] for n in notifications(api, cy))
    # A newer activity after the mark is unread again.
    later = api.ok("POST", f"/v1/posts/{post['id']}/comments", ben, status=201, json={"text": "@cy look"})
    assert unread(api, cy)["notifications"] == 1

    # Deleting a comment takes its notifications; deleting the post takes the rest.
    api.ok("DELETE", f"/v1/comments/{comment['id']}", ben, status=204)
    assert [(n["kind"], n["comment"]["id"]) for n in notifications(api, ana)[:1]] == [("comment", later["id"])]
    assert [(n["comment"] or {}).get("id") for n in notifications(api, cy)] == [later["id"], None]
    api.ok("POST", f"/v1/posts/{post['id']}/like", cy)
    api.ok("DELETE", f"/v1/posts/{post['id']}", ana, status=204)
    assert [n["kind"] for n in notifications(api, ana)] == ["follow"]
    assert notifications(api, cy) == [] and notifications(api, ben) == []
    # Un-following takes the follow notification back.
    api.ok("DELETE", "/v1/accounts/ana/follow", ben)
    assert notifications(api, ana) == []


def test_editing_a_caption_notifies_the_newly_mentioned_once(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    post = api.post(ana, "plain")
    api.ok("PATCH", f"/v1/posts/{post['id']}", ana, json={"caption": "now with @ben"})
    api.ok("PATCH", f"/v1/posts/{post['id']}", ana, json={"caption": "still with @ben!"})
    assert [(n["kind"], names(n)) for n in notifications(api, ben)] == [("mention", ["ana"])]
    assert api.ok("GET", f"/v1/posts/{post['id']}")["mentions"] == ["ben"]


def test_notifications_page_and_refuse_bad_input(api: Api) -> None:
    ana = api.sign_up("ana")
    for i in range(5):
        api.follow(api.sign_up(f"f{i}"), "ana")
    assert [names(n)[0] for n in api.walk("/v1/notifications", ana, limit=2)] == [f"f{i}" for i in range(4, -1, -1)]
    assert api.request("GET", "/v1/notifications").status_code == 401
    assert api.request("GET", "/v1/notifications", ana, params={"limit": 0}).status_code == 422
    assert api.request("GET", "/v1/notifications", ana, params={"cursor": "nope"}).status_code == 400
    bad = api.request("POST", "/v1/notifications/read", ana, json={"up_to": "x1"})
    assert bad.status_code == 422
    assert api.request("POST", "/v1/notifications/read", ana, json={"up_to": 5}).status_code == 422
    assert api.request("POST", "/v1/notifications/read", ana, json={"extra": 1}).status_code == 422


def test_direct_messages_conversations_unread_and_privacy(api: Api) -> None:
    ana, ben, cy = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cy")
    photo = api.upload(ana)
    first = api.ok("POST", "/v1/messages", ana, status=201, json={"to": "Ben", "text": "hi ben"})
    second = api.ok("POST", "/v1/messages", ana, status=201, json={"to": "ben", "media_ids": [photo["id"]]})
    assert second["media"][0]["id"] == photo["id"] and second["text"] == ""
    conversation = first["conversation_id"]
    assert second["conversation_id"] == conversation
    api.ok("POST", "/v1/messages", cy, status=201, json={"to": "ben", "text": "hey, cy here"})

    ben_inbox = api.walk("/v1/conversations", ben, limit=1)
    assert [(c["with"]["username"], c["unread_count"]) for c in ben_inbox] == [("cy", 1), ("ana", 2)]
    ana_inbox = api.walk("/v1/conversations", ana)
    assert [(c["with"]["username"], c["unread_count"]) for c in ana_inbox] == [("ben", 0)]
    assert ana_inbox[0]["last_message"]["id"] == second["id"]
    assert unread(api, ben)["messages"] == 3

    path = f"/v1/conversations/{conversation}/messages"
    listed = api.walk(path, ben, limit=1)
    assert [m["id"] for m in listed] == [second["id"], first["id"]]  # newest first
    assert listed[1]["text"] == "hi ben" and listed[1]["sender_id"] == ana.id

    # Only the two participants may read it (or mark it read).
    assert api.request("GET", path, cy).status_code == 404
    assert api.request("GET", f"/v1/conversations/{conversation}", cy).status_code == 404
    assert api.request("POST", f"/v1/conversations/{conversation}/read", cy).status_code == 404
    assert api.request("GET", path).status_code == 401

    # Reading up to the first message leaves the second unread; then all of it.
    api.ok("POST", f"/v1/conversations/{conversation}/read", ben, json={"up_to": first["id"]})
    assert api.ok("GET", f"/v1/conversations/{conversation}", ben)["unread_count"] == 1
    api.ok("POST", f"/v1/conversations/{conversation}/read", ben)
    assert api.ok("GET", f"/v1/conversations/{conversation}", ben)["unread_count"] == 0
    assert unread(api, ben)["messages"] == 1
    # A reply moves the conversation up ben's inbox and is unread for ana.
    api.ok("POST", "/v1/messages", ben, status=201, json={"to": "ana", "text": "hello!"})
    assert [c["with"]["username"] for c in api.walk("/v1/conversations", ben)] == ["ana", "cy"]
    assert api.ok("GET", f"/v1/conversations/{conversation}", ana)["unread_count"] == 1


def test_messages_refuse_bad_input_precisely(api: Api, log_size) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    bens_photo = api.upload(ben)
    before = log_size()

    def refused(body: Any, status: int, words: str) -> None:
        response = api.request("POST", "/v1/messages", ana, json=body)
        assert response.status_code == status, response.text
        assert words in response.text, response.text

    refused({"to": "ben"}, 422, "text or at least one media id")
    refused({"to": "ben", "text": "   "}, 422, "text or at least one media id")
    refused({"to": "nobody", "text": "hi"}, 404, "does not exist")
    refused({"to": "not a name!", "text": "hi"}, 404, "does not exist")
    refused({"to": "ana", "text": "hi me"}, 400, "yourself")
    refused({"to": "ben", "text": "x" * 2001}, 422, "2001 characters")
    refused({"to": "ben", "media_ids": [bens_photo["id"]]}, 422, "not uploaded by you")
    refused({"to": "ben", "media_ids": ["123"]}, 422, "does not exist")
    refused({"to": "ben", "media_ids": ["1", "1"]}, 422, "repeat")
    refused({"to": "ben", "media_ids": [str(i) for i in range(5)]}, 422, "at most 4 photos")
    refused({"to": "ben", "text": 5}, 422, "string")
    refused({"text": "hi"}, 422, "missing")
    assert api.request("POST", "/v1/messages", json={"to": "ben", "text": "hi"}).status_code == 401
    assert api.request("GET", "/v1/conversations/abc/messages", ana).status_code == 404
    assert api.request("GET", "/v1/conversations/2-1/messages", ana).status_code == 404
    assert api.request("POST", "/v1/conversations/x/read", ana).status_code == 404
    assert log_size() == before  # nothing was appended by any refusal


def test_too_many_mentions_are_refused(api: Api) -> None:
    ana = api.sign_up("ana")
    media = api.upload(ana)["id"]
    caption = " ".join(f"@user{i}" for i in range(21))
    response = api.request("POST", "/v1/posts", ana, json={"caption": caption, "media_ids": [media]})
    assert response.status_code == 422 and "at most 20" in response.text


def test_blocked_and_muted_accounts_are_silenced_and_blocks_refuse_messages(api: Api) -> None:
    ana, ben, cy = api.sign_up("ana"), api.sign_up("ben"), api.sign_up("cy")
    post = api.post(ana, "hello")
    api.ok("POST", f"/v1/posts/{post['id']}/like", ben)
    api.ok("POST", f"/v1/posts/{post['id']}/like", cy)
    api.ok("POST", "/v1/messages", ben, status=201, json={"to": "ana", "text": "hi"})
    api.follow(cy, "ana")

    api.ok("POST", "/v1/accounts/cy/mute", ana)  # muted: no longer heard of
    (likes,) = [n for n in notifications(api, ana) if n["kind"] == "like"]
    assert names(likes) == ["ben"]
    assert [n["kind"] for n in notifications(api, ana)] == ["like"]  # cy's follow is silenced
    api.ok("DELETE", "/v1/accounts/cy/mute", ana)
    assert [n["kind"] for n in notifications(api, ana)] == ["follow", "like"]

    api.ok("POST", "/v1/accounts/ben/block", ana)
    (likes,) = [n for n in notifications(api, ana) if n["kind"] == "like"]
    assert names(likes) == ["cy"]
    assert api.walk("/v1/conversations", ana) == []  # the conversation is hidden from ana
    refused = api.request("POST", "/v1/messages", ben, json={"to": "ana", "text": "hello?"})
    assert refused.status_code == 403, refused.text
    assert api.request("POST", "/v1/messages", ana, json={"to": "ben", "text": "x"}).status_code == 403


def test_a_follow_request_notifies_until_answered(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    api.ok("PATCH", "/v1/accounts/me", ana, json={"private": True})
    assert api.ok("POST", "/v1/accounts/ana/follow", ben)["requested"] is True
    assert [(n["kind"], names(n)) for n in notifications(api, ana)] == [("follow_request", ["ben"])]
    api.ok("POST", "/v1/follow_requests/ben/approve", ana)
    assert [(n["kind"], names(n)) for n in notifications(api, ana)] == [("follow", ["ben"])]
