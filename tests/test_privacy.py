"""Behaviour of private accounts, follow requests, blocks and mutes (issue 5, items 5
and 6), over HTTP on every backend.

Decisions tested here (README "Privacy, blocks and mutes"):
- a private account's profile (the Account) stays readable; its posts, followers and
  following lists answer 403 to anyone but the owner and approved followers; its single
  posts (and their likes and comments) answer 404, as do hashtag and home feeds omit them;
- making an account public again leaves pending requests pending (the owner can still
  approve or decline them; the requester's next follow call follows at once);
- an account that blocks you does not exist for you (404); one you block answers 403
  on its posts; likes, comments and follows between a blocked pair answer 403.
"""
from __future__ import annotations

from typing import Any

from tests.support import Api, User
from tests.test_api_behaviour import assert_error, usernames


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def make_private(api: Api, user: User, private: bool = True) -> None:
    assert api.ok("PATCH", "/v1/accounts/me", user, json={"private": private})["private"] is private


def test_a_private_account_turns_follows_into_requests_the_owner_approves_or_declines(api: Api) -> None:
    ana, ben, cy, dee = (api.sign_up(n) for n in ("ana", "ben", "cy", "dee"))
    secret = api.post(ana, "private #sunset")
    make_private(api, ana)

    # Follows become requests; asking twice is one request.
    for _ in range(2):
        assert api.ok("POST", "/v1/accounts/ana/follow", ben) == {"following": False, "requested": True}
    assert api.ok("POST", "/v1/accounts/ana/follow", cy) == {"following": False, "requested": True}
    assert api.ok("POST", "/v1/accounts/ana/follow", dee) == {"following": False, "requested": True}
    # The request list: newest first, paginated, only for the owner.
    assert usernames(api.walk("/v1/follow_requests", ana, limit=2)) == ["dee", "cy", "ben"]
    assert api.ok("GET", "/v1/follow_requests", ben)["items"] == []
    assert_error(api.request("GET", "/v1/follow_requests"), 401)
    # Relationship fields tell a requester where they stand.
    seen = api.ok("GET", "/v1/accounts/ana", ben)
    assert (seen["following"], seen["requested"], seen["blocking"], seen["muting"]) == (False, True, False, False)
    assert "requested" not in api.ok("GET", "/v1/accounts/ana")  # signed out: no relationship
    assert "requested" not in api.ok("GET", "/v1/accounts/ana", ana)  # nor about oneself
    assert api.ok("GET", "/v1/accounts/ana")["followers_count"] == 0

    # Nobody but the owner sees inside yet.
    for reader in (ben, cy, None):
        assert_error(api.request("GET", "/v1/accounts/ana/posts", reader), 403)
        assert_error(api.request("GET", "/v1/accounts/ana/followers", reader), 403)
        assert_error(api.request("GET", f"/v1/posts/{secret['id']}", reader), 404)
        assert_error(api.request("GET", f"/v1/posts/{secret['id']}/comments", reader), 404)
        assert_error(api.request("GET", f"/v1/posts/{secret['id']}/likes", reader), 404)
        assert api.ok("GET", "/v1/tags/sunset/posts", reader)["items"] == []
    assert ids(api.walk("/v1/accounts/ana/posts", ana)) == [secret["id"]]
    assert_error(api.request("POST", f"/v1/posts/{secret['id']}/like", ben), 404)
    assert_error(api.request("POST", f"/v1/posts/{secret['id']}/comments", ben, json={"text": "hi"}), 404)

    # Approve ben (twice: idempotent), decline cy; dee withdraws.
    for _ in range(2):
        assert api.ok("POST", "/v1/follow_requests/ben/approve", ana) == {"username": "ben", "approved": True}
    assert api.ok("POST", "/v1/follow_requests/cy/decline", ana) == {"username": "cy", "approved": False}
    assert api.ok("DELETE", "/v1/accounts/ana/follow", dee) == {"following": False}
    assert api.ok("GET", "/v1/follow_requests", ana)["items"] == []
    assert usernames(api.walk("/v1/accounts/ana/followers", ana)) == ["ben"]
    assert api.ok("GET", "/v1/accounts/ana")["followers_count"] == 1
    seen = api.ok("GET", "/v1/accounts/ana", ben)
    assert (seen["following"], seen["requested"]) == (True, False)
    assert api.ok("GET", "/v1/accounts/ana", cy)["requested"] is False

    # Ben, approved, sees everything; cy, declined, still nothing.
    assert ids(api.walk("/v1/feed", ben)) == [secret["id"]]
    assert ids(api.walk("/v1/accounts/ana/posts", ben)) == [secret["id"]]
    assert ids(api.ok("GET", "/v1/tags/sunset/posts", ben)["items"]) == [secret["id"]]
    assert api.ok("POST", f"/v1/posts/{secret['id']}/like", ben) == {"liked": True}
    api.ok("POST", f"/v1/posts/{secret['id']}/comments", ben, status=201, json={"text": "lovely"})
    assert api.ok("GET", f"/v1/posts/{secret['id']}", ben)["like_count"] == 1
    assert_error(api.request("GET", f"/v1/posts/{secret['id']}", cy), 404)
    assert_error(api.request("GET", "/v1/accounts/ana/posts", cy), 403)
    # A declined requester may ask again.
    assert api.ok("POST", "/v1/accounts/ana/follow", cy) == {"following": False, "requested": True}

    # Going public: pending requests stay pending; posts are visible to all at once; the
    # pending requester's next follow call follows at once.
    make_private(api, ana, False)
    assert usernames(api.walk("/v1/follow_requests", ana)) == ["cy"]
    assert ids(api.walk("/v1/accounts/ana/posts")) == [secret["id"]]
    assert api.ok("GET", f"/v1/posts/{secret['id']}")["id"] == secret["id"]
    assert api.ok("POST", "/v1/accounts/ana/follow", cy) == {"following": True}
    assert api.ok("GET", "/v1/follow_requests", ana)["items"] == []
    assert sorted(usernames(api.walk("/v1/accounts/ana/followers"))) == ["ben", "cy"]

    # And private again: the approved followers keep seeing; others do not.
    make_private(api, ana)
    assert ids(api.walk("/v1/feed", cy)) == [secret["id"]]
    assert_error(api.request("GET", "/v1/accounts/ana/posts", dee), 403)
    assert api.ok("GET", "/v1/tags/sunset/posts", dee)["items"] == []


def test_follow_request_bad_input(api: Api, log_size) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    make_private(api, ana)
    before = log_size()
    # No request from ben: approving or declining it is 404; nobody at all, 404 too.
    assert "no pending follow request" in assert_error(api.request("POST", "/v1/follow_requests/ben/approve", ana), 404)["detail"]
    assert_error(api.request("POST", "/v1/follow_requests/ben/decline", ana), 404)
    assert_error(api.request("POST", "/v1/follow_requests/nobody/approve", ana), 404)
    assert_error(api.request("POST", "/v1/follow_requests/NO-SUCH!/decline", ana), 404)
    # Oneself: 400.
    assert "yourself" in assert_error(api.request("POST", "/v1/follow_requests/ana/approve", ana), 400)["detail"]
    # Signed out: 401.
    assert_error(api.request("POST", "/v1/follow_requests/ben/approve"), 401)
    # A request approved by the wrong account: ben cannot approve his own request to ana.
    assert api.ok("POST", "/v1/accounts/ana/follow", ben)["requested"] is True
    after_request = log_size()
    assert_error(api.request("POST", "/v1/follow_requests/ana/approve", ben), 404)
    # Declining an existing follower is not declining a request.
    api.ok("POST", "/v1/follow_requests/ben/approve", ana)
    assert_error(api.request("POST", "/v1/follow_requests/ben/decline", ana), 404)
    assert before + 1 == after_request and log_size() == after_request + 1
    # Bad paging.
    assert_error(api.request("GET", "/v1/follow_requests", ana, params={"limit": 0}), 422)
    assert_error(api.request("GET", "/v1/follow_requests", ana, params={"cursor": "nonsense"}), 400)


def test_a_block_ends_follows_both_ways_and_hides_each_from_the_other(api: Api) -> None:
    ana, ben, cy = (api.sign_up(n) for n in ("ana", "ben", "cy"))
    api.follow(ana, "ben")
    api.follow(ben, "ana")
    api.follow(cy, "ana")
    anas = api.post(ana, "ana's #daily")
    bens = api.post(ben, "ben's #daily")
    api.ok("POST", f"/v1/posts/{anas['id']}/comments", ben, status=201, json={"text": "from ben"})
    api.ok("POST", f"/v1/posts/{anas['id']}/comments", cy, status=201, json={"text": "from cy"})
    api.ok("POST", f"/v1/posts/{anas['id']}/like", ben)

    for _ in range(2):  # idempotent
        assert api.ok("POST", "/v1/accounts/ben/block", ana) == {"blocking": True}

    # Follows ended both ways, with exact counts.
    assert api.ok("GET", "/v1/accounts/ana")["followers_count"] == 1
    assert api.ok("GET", "/v1/accounts/ana")["following_count"] == 0
    assert api.ok("GET", "/v1/accounts/ben")["followers_count"] == 0
    assert usernames(api.walk("/v1/accounts/ana/followers")) == ["cy"]
    assert api.walk("/v1/feed", ana) == [] and api.walk("/v1/feed", ben) == []

    # Ana does not exist for ben; ben's things answer 403 to ana.
    assert_error(api.request("GET", "/v1/accounts/ana", ben), 404)
    assert_error(api.request("GET", "/v1/accounts/ana/posts", ben), 404)
    assert api.ok("GET", "/v1/accounts/ben", ana)["blocking"] is True
    assert "unblock" in assert_error(api.request("GET", "/v1/accounts/ben/posts", ana), 403)["detail"]
    for reader, post in ((ben, anas), (ana, bens)):
        assert_error(api.request("GET", f"/v1/posts/{post['id']}", reader), 404)
        assert_error(api.request("GET", f"/v1/posts/{post['id']}/comments", reader), 404)
    assert ids(api.ok("GET", "/v1/tags/daily/posts", ana)["items"]) == [anas["id"]]
    assert ids(api.ok("GET", "/v1/tags/daily/posts", ben)["items"]) == [bens["id"]]
    assert ids(api.ok("GET", "/v1/tags/daily/posts", cy)["items"]) == [bens["id"], anas["id"]]
    # Ben's comment and like are hidden from ana, not from cy.
    assert [c["text"] for c in api.walk(f"/v1/posts/{anas['id']}/comments", ana)] == ["from cy"]
    assert [c["text"] for c in api.walk(f"/v1/posts/{anas['id']}/comments", cy)] == ["from ben", "from cy"]
    assert api.walk(f"/v1/posts/{anas['id']}/likes", ana) == []
    assert usernames(api.walk(f"/v1/posts/{anas['id']}/likes", cy)) == ["ben"]

    # Interactions are refused both ways, precisely, and append nothing.
    detail = assert_error(api.request("POST", "/v1/accounts/ana/follow", ben), 403)["detail"]
    assert detail == "ana has blocked you"
    detail = assert_error(api.request("POST", "/v1/accounts/ben/follow", ana), 403)["detail"]
    assert detail == "you have blocked ben; unblock them first"
    assert_error(api.request("POST", f"/v1/posts/{anas['id']}/like", ben), 403)
    assert_error(api.request("POST", f"/v1/posts/{bens['id']}/like", ana), 403)
    assert_error(api.request("POST", f"/v1/posts/{anas['id']}/comments", ben, json={"text": "x"}), 403)
    assert api.ok("GET", "/v1/accounts/ana")["followers_count"] == 1

    # Unblocking: visible again, follows stay ended, following is allowed again.
    for _ in range(2):
        assert api.ok("DELETE", "/v1/accounts/ben/block", ana) == {"blocking": False}
    assert api.ok("GET", f"/v1/posts/{anas['id']}", ben)["id"] == anas["id"]
    assert api.ok("GET", "/v1/accounts/ben", ana)["blocking"] is False
    assert api.walk("/v1/feed", ben) == []
    api.follow(ben, "ana")
    assert ids(api.walk("/v1/feed", ben)) == [anas["id"]]


def test_a_block_ends_pending_requests_and_block_bad_input(api: Api, log_size) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    make_private(api, ana)
    assert api.ok("POST", "/v1/accounts/ana/follow", ben)["requested"] is True
    api.ok("POST", "/v1/accounts/ben/block", ana)
    assert api.ok("GET", "/v1/follow_requests", ana)["items"] == []
    assert api.ok("GET", "/v1/accounts/ana")["followers_count"] == 0

    before = log_size()
    assert "yourself" in assert_error(api.request("POST", "/v1/accounts/ana/block", ana), 400)["detail"]
    assert "yourself" in assert_error(api.request("DELETE", "/v1/accounts/ana/block", ana), 400)["detail"]
    assert "yourself" in assert_error(api.request("POST", "/v1/accounts/ana/mute", ana), 400)["detail"]
    assert_error(api.request("POST", "/v1/accounts/nobody/block", ana), 404)
    assert_error(api.request("POST", "/v1/accounts/nobody/mute", ana), 404)
    assert_error(api.request("DELETE", "/v1/accounts/nobody/mute", ana), 404)
    assert_error(api.request("POST", "/v1/accounts/ben/block"), 401)
    assert_error(api.request("POST", "/v1/accounts/ben/mute"), 401)
    assert log_size() == before


def test_a_mute_hides_only_from_the_muters_home_feed(api: Api) -> None:
    ana, ben, cy = (api.sign_up(n) for n in ("ana", "ben", "cy"))
    api.follow(ana, "ben")
    api.follow(ana, "cy")
    api.follow(cy, "ben")
    posts = [api.post(ben, f"ben {n}") for n in range(3)] + [api.post(cy, "cy")]
    bens = [p["id"] for p in reversed(posts[:3])]

    for _ in range(2):
        assert api.ok("POST", "/v1/accounts/ben/mute", ana) == {"muting": True}
    assert ids(api.walk("/v1/feed", ana, limit=1)) == [posts[3]["id"]]
    assert api.ok("GET", "/v1/accounts/ben", ana)["muting"] is True
    # Nothing else changes: still following, ben's posts readable, others' feeds intact.
    assert api.ok("GET", "/v1/accounts/ben", ana)["following"] is True
    assert ids(api.walk("/v1/accounts/ben/posts", ana)) == bens
    assert api.ok("GET", f"/v1/posts/{bens[0]}", ana)["id"] == bens[0]
    assert ids(api.walk("/v1/feed", cy)) == bens
    assert api.ok("POST", f"/v1/posts/{bens[0]}/like", ana) == {"liked": True}
    # A full page skips muted posts and pages on.
    page = api.ok("GET", "/v1/feed", ana, params={"limit": 1})
    assert ids(page["items"]) == [posts[3]["id"]]

    for _ in range(2):
        assert api.ok("DELETE", "/v1/accounts/ben/mute", ana) == {"muting": False}
    assert ids(api.walk("/v1/feed", ana, limit=2)) == [posts[3]["id"]] + bens


def test_a_follow_racing_a_block_is_undone(tmp_path) -> None:
    """The block lands between the follow command's check and its append (the store
    below runs the block right before the follow's append): the follow command sees the
    block after appending, undoes its follow and refuses. Real SQLite log; only the
    interleaving is arranged."""
    import asyncio

    import pytest

    from commands import accounts, social
    from commands.context import Actor, CommandContext
    from domain.aggregates import NOT_FOLLOWING, follow_stream, fold_follow
    from domain.errors import NotAllowed
    from domain.ids import IdGenerator
    from streams.sqlite_event_store import SqliteEventStore
    from tests.test_properties import HASHER

    class BlockFirst:
        """The real store; before the first append to a follow stream, run `before`."""

        def __init__(self, inner: SqliteEventStore) -> None:
            self.inner, self.before = inner, None

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        async def append(self, stream: str, *args, **kwargs):
            if stream.startswith("follow-") and self.before is not None:
                before, self.before = self.before, None
                await before()
            return await self.inner.append(stream, *args, **kwargs)

    async def scenario(private: bool) -> str:
        store = SqliteEventStore(tmp_path / f"events-{private}.db", durable=False)
        plain = CommandContext(store, IdGenerator(3), HASHER)
        racing = BlockFirst(store)
        ctx = CommandContext(racing, IdGenerator(4), HASHER)  # type: ignore[arg-type]
        ana = (await accounts.register_account(plain, "ana", "password123", None)).value
        ben = (await accounts.register_account(plain, "ben", "password123", None)).value
        if private:
            await accounts.update_profile(plain, Actor(ana), accounts.ProfileChanges(private=True))
        racing.before = lambda: social.block(plain, Actor(ana), ben)
        with pytest.raises(NotAllowed, match="ana has blocked you"):
            await social.follow(ctx, Actor(ben), ana)
        state, _ = await plain.load(follow_stream(ben, ana), fold_follow)
        return state

    assert asyncio.run(scenario(False)) == NOT_FOLLOWING  # a follow, undone
    assert asyncio.run(scenario(True)) == NOT_FOLLOWING  # a request, withdrawn
