"""Mentions in the domain: parsing, bounds, and old events without resolved mentions."""
from __future__ import annotations

import orjson
import pytest

from domain import rules
from domain.errors import InvalidInput
from domain.events import CommentAdded, PostCreated, PostEdited, decode_event


def test_mentions_are_parsed_case_insensitively_in_any_script() -> None:
    text = "hi @Ana, @ben. and @Zoë_1 @ana again; mail me@host.org; @a.b.c! @@x"
    assert rules.parse_mentions(text) == ("ana", "ben", "zoë_1", "a.b.c")
    assert rules.mentionable("a.b.c") == "a.b.c"
    assert rules.mentionable("zoë_1") is None  # no account can have that name
    assert rules.mentionable("x" * 31) is None


def test_at_most_twenty_mentions() -> None:
    twenty = " ".join(f"@u{i}" for i in range(20))
    assert len(rules.check_caption(twenty)[2]) == 20
    with pytest.raises(InvalidInput, match="21 people"):
        rules.check_caption(twenty + " @u20")
    with pytest.raises(InvalidInput, match="21 people"):
        rules.check_comment(twenty + " @u20")
    assert rules.check_comment(twenty + " @u0")  # repeats count once


def _v1(type_name: str, data: dict) -> bytes:
    return orjson.dumps(
        {
            "event_id": "e",
            "type": type_name,
            "version": 1,
            "stream": "s",
            "occurred_at": "2026-01-01T00:00:00.000Z",
            "actor": None,
            "correlation_id": "c",
            "causation_id": None,
            "data": data,
        }
    )


def test_v1_events_are_upcast_to_resolved_mentions() -> None:
    post = decode_event(
        _v1("PostCreated", {"post_id": "1", "author_id": "2", "caption": "hi @ben", "media": [], "tags": [], "mentions": ["ben"]})
    )
    assert isinstance(post.data, PostCreated) and post.version == 2 and post.data.mentions == ()
    edited = decode_event(_v1("PostEdited", {"post_id": "1", "author_id": "2", "caption": "@ben", "tags": [], "mentions": ["ben"]}))
    assert isinstance(edited.data, PostEdited) and edited.data.mentions == ()
    comment = decode_event(
        _v1("CommentAdded", {"comment_id": "3", "post_id": "1", "author_id": "2", "post_author_id": "2", "text": "@ben"})
    )
    assert isinstance(comment.data, CommentAdded) and comment.data.mentions == ()
