"""Unit tests of the decision rules (domain/rules.py) and the event codec."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import rules
from domain.errors import BadRequest, InvalidInput, NotAllowed, NotFound
from domain.events import (
    UPCASTERS,
    AccountRegistered,
    EventDecodeError,
    Liked,
    UnknownEvent,
    decode_event,
    encode_event,
    event_to_dict,
    new_event,
)
from domain.ids import IdGenerator, id_time, parse_id


@pytest.mark.parametrize("raw,expected", [("Ana", "ana"), (" ben.x_1 ", "ben.x_1"), ("a" * 30, "a" * 30)])
def test_usernames_are_case_insensitive(raw: str, expected: str) -> None:
    assert rules.normalize_username(raw) == expected


@pytest.mark.parametrize("raw", ["", "a" * 31, "ana!", "an a", "ána", "ana-b"])
def test_bad_usernames_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        rules.normalize_username(raw)
    assert refused.value.field == "username"


def test_password_length() -> None:
    rules.check_password("x" * 8)
    rules.check_password("x" * 128)
    for bad in ("x" * 7, "x" * 129):
        with pytest.raises(InvalidInput):
            rules.check_password(bad)


def test_caption_limits_and_parsing() -> None:
    caption, tags, mentions = rules.check_caption("Sun #Beach #beach #Été @Ana and me@mail.com #123 a#b")
    assert tags == ("beach", "été")
    assert mentions == ("ana",)
    assert rules.check_caption("x" * 2200)[0] == "x" * 2200
    with pytest.raises(InvalidInput, match="2201 characters"):
        rules.check_caption("x" * 2201)
    thirty = " ".join(f"#t{i}" for i in range(30))
    assert len(rules.check_caption(thirty)[1]) == 30
    with pytest.raises(InvalidInput, match="31 hashtags"):
        rules.check_caption(thirty + " #t30")


def test_control_characters_are_dropped_but_newlines_kept() -> None:
    assert rules.check_caption("a\x00b\nc\u200b")[0] == "ab\nc"


def test_comment_limits() -> None:
    assert rules.check_comment(" hi ") == " hi "
    for bad in ("", "   \n", "x" * 2201):
        with pytest.raises(InvalidInput):
            rules.check_comment(bad)


def test_media_rules() -> None:
    assert rules.check_media_ids(["1"]) == ["1"]
    for bad in ([], [str(i) for i in range(11)], ["1", "1"]):
        with pytest.raises(InvalidInput):
            rules.check_media_ids(bad)
    rules.check_media_usable("1", "ana", "ana")
    with pytest.raises(InvalidInput, match="does not exist"):
        rules.check_media_usable("1", None, "ana")
    with pytest.raises(InvalidInput, match="not uploaded by you"):
        rules.check_media_usable("1", "ben", "ana")


def test_authorship_rules() -> None:
    with pytest.raises(BadRequest):
        rules.check_can_follow("1", "1")
    rules.check_can_follow("1", "2")
    with pytest.raises(NotFound):
        rules.check_post_exists("9", False)
    with pytest.raises(NotAllowed):
        rules.check_is_author("1", "2")
    rules.check_can_delete_comment("1", "1", "2")
    rules.check_can_delete_comment("2", "1", "2")
    with pytest.raises(NotAllowed):
        rules.check_can_delete_comment("3", "1", "2")


def test_ids_are_time_sortable_and_unique() -> None:
    generator = IdGenerator(5)
    ids = [generator.next_id() for _ in range(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert abs(id_time(ids[-1]).timestamp() - id_time(ids[0]).timestamp()) < 5
    assert parse_id(str(ids[0])) == ids[0]
    for bad in ("", "abc", "-1", "0", "1" * 20, "９"):
        assert parse_id(bad) is None


@given(st.text(max_size=50), st.text(max_size=50))
def test_event_roundtrip(username: str, name: str) -> None:
    event = new_event(AccountRegistered("1", username, name, "hash"), stream="account-1", actor="1")
    assert decode_event(encode_event(event)) == event


def test_secret_fields_are_redacted_for_analysts() -> None:
    event = new_event(AccountRegistered("1", "ana", "Ana", "argon2-hash"), stream="account-1", actor="1")
    assert event_to_dict(event, redact=True)["data"]["password_hash"] == "[redacted]"
    assert event_to_dict(event)["data"]["password_hash"] == "argon2-hash"


def test_unknown_and_future_events_decode_as_unknown() -> None:
    event = new_event(Liked("1", "2", "3", "4"), stream="like-1-2", actor="2")
    doc = event_to_dict(event)
    assert isinstance(decode_event(encode_event(event)).data, Liked)
    future = {**doc, "type": "Reposted"}
    assert isinstance(decode_event(__import__("orjson").dumps(future)).data, UnknownEvent)
    newer = {**doc, "version": 99}
    assert isinstance(decode_event(__import__("orjson").dumps(newer)).data, UnknownEvent)


def test_upcasters_lift_old_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    import orjson

    monkeypatch.setattr(Liked, "VERSION", 2)
    monkeypatch.setitem(UPCASTERS, ("Liked", 1), lambda data: {**data, "like_id": data.get("like_id", "0")})
    old = {**event_to_dict(new_event(Liked("1", "2", "3", "4"), stream="s", actor=None)), "version": 1}
    del old["data"]["like_id"]
    lifted = decode_event(orjson.dumps(old))
    assert lifted.version == 2 and isinstance(lifted.data, Liked) and lifted.data.like_id == "0"


@pytest.mark.parametrize(
    "raw",
    [b"", b"nope", b"[]", b'{"type": "Liked"}', b'{"type": 1, "version": 1, "data": {}}'],
)
def test_malformed_events_are_decode_errors(raw: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(raw)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    try:
        decode_event(raw)
    except EventDecodeError:
        pass


def test_wrongly_typed_payloads_are_decode_errors() -> None:
    import orjson

    doc = event_to_dict(new_event(Liked("1", "2", "3", "4"), stream="s", actor=None))
    for field, value in (("post_id", 5), ("account_id", None), ("like_id", ["x"])):
        bad = {**doc, "data": {**doc["data"], field: value}}
        with pytest.raises(EventDecodeError):
            decode_event(orjson.dumps(bad))


def test_blocks_refuse_both_ways_with_the_reason() -> None:
    rules.check_not_blocked(False, False, "ana")
    with pytest.raises(NotAllowed, match="^you have blocked ana; unblock them first$"):
        rules.check_not_blocked(True, False, "ana")
    with pytest.raises(NotAllowed, match="^ana has blocked you$"):
        rules.check_not_blocked(False, True, "ana")
    with pytest.raises(NotAllowed, match="you have blocked"):  # one's own block is said first
        rules.check_not_blocked(True, True, "ana")
    with pytest.raises(BadRequest, match="^you cannot block yourself$"):
        rules.check_not_self("1", "1", "block")
    rules.check_not_self("1", "2", "block")


def test_follow_streams_fold_to_none_requested_or_following() -> None:
    from domain.aggregates import FOLLOWING, NOT_FOLLOWING, REQUESTED, fold_follow, fold_following
    from domain.events import Followed, FollowRequestCancelled, FollowRequestDeclined, FollowRequested, Unfollowed

    asked = FollowRequested("1", "2", "10")
    assert fold_follow([]) == NOT_FOLLOWING
    assert fold_follow([asked]) == REQUESTED
    assert fold_follow([asked, Followed("1", "2", "11")]) == FOLLOWING  # approved
    assert fold_follow([asked, FollowRequestDeclined("1", "2")]) == NOT_FOLLOWING
    assert fold_follow([asked, FollowRequestCancelled("1", "2"), asked]) == REQUESTED
    assert fold_follow([Followed("1", "2", "11"), Unfollowed("1", "2")]) == NOT_FOLLOWING
    assert fold_following([asked]) is False and fold_following([asked, Followed("1", "2", "11")]) is True
