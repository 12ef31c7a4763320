"""Hostile input (issue 9, item 3) beyond the OpenAPI fuzzing of tests/test_fuzz.py:
malformed images through the real upload route, malformed events through the decoder,
and the size limits on bodies, lists and strings."""
from __future__ import annotations

import dataclasses
import io
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from api.settings import Settings
from domain.events import (
    EVENT_TYPES,
    AccountRegistered,
    Event,
    EventDecodeError,
    ImageVariant,
    MediaRef,
    MediaStored,
    PostCreated,
    decode_event,
    encode_event,
    new_event,
)
from tests.support import Api, jpeg, png


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (20, 10)).save(out, "GIF")
    return out.getvalue()


SEEDS = [jpeg(40, 30), png(24, 24), _gif()]
UPLOAD_ANSWERS = {201, 413, 415, 422}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
    name=st.text(max_size=40),
    declared=st.sampled_from(["image/jpeg", "image/png", "text/html", "application/octet-stream"]),
)
def test_malformed_uploads_are_refused_cleanly(
    client: TestClient, log_size, seed: bytes, flips: list[tuple[int, int]], cut: int | None, name: str, declared: str
) -> None:
    """Damaged real images through POST /v1/media: a 201 with a photo that is really
    there, or a 4xx that appended nothing; never a 5xx."""
    api = Api(client)
    if not hasattr(client, "_fuzz_user"):
        client._fuzz_user = api.sign_up("uploader")  # type: ignore[attr-defined]
    user = client._fuzz_user  # type: ignore[attr-defined]
    data = bytearray(seed)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    before = log_size()
    r = api.request("POST", "/v1/media", user, files={"file": (name or "x", bytes(data), declared)})
    assert r.status_code in UPLOAD_ANSWERS, f"{r.status_code} {r.text}"
    if r.status_code == 201:
        for url in r.json()["urls"].values():
            assert client.get(url).status_code == 200  # the event points at stored bytes
        assert log_size() == before + 1
    else:
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]
        assert log_size() == before  # nothing half-applied


# ----- the event decoder ---------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
REF = MediaRef("5", "image/jpeg", 1, 1, {"thumb": ImageVariant("5/thumb-0000000000000000.jpg", "image/jpeg", 1, 1)})
SAMPLES = [
    new_event(AccountRegistered("1", "ana", "Ana", "$argon2id$x"), stream="account-1", actor="1"),
    new_event(MediaStored("5", "1", REF), stream="media-5", actor="1"),
    new_event(PostCreated("9", "1", "hi #x", (REF,), ("x",), ()), stream="post-9", actor="1"),
]


def _decodes_or_refuses(raw: bytes) -> Event | None:
    try:
        event = decode_event(raw)
    except EventDecodeError as exc:
        assert str(exc)
        return None
    # What decodes is well-typed: the payload is its type's dataclass, fully built.
    assert dataclasses.is_dataclass(event.data)
    expected = EVENT_TYPES.get(event.type)
    if expected is not None and event.version == expected.VERSION:
        assert isinstance(event.data, expected)
    return event


@settings(max_examples=300, deadline=None)
@given(sample=st.sampled_from(SAMPLES), path=st.lists(st.integers(0, 50), min_size=1, max_size=3), value=JSON)
def test_events_with_any_field_replaced_decode_or_raise_decode_error(sample: Event, path: list[int], value: Any) -> None:
    """A valid event with one field (at any depth, envelope or payload) replaced by any
    JSON value: the decoder gives a well-typed event or EventDecodeError, nothing else."""
    doc = orjson.loads(encode_event(sample))
    target = doc
    for step in path[:-1]:
        keys = list(target) if isinstance(target, dict) else []
        if not keys:
            break
        nxt = target[keys[step % len(keys)]]
        if not isinstance(nxt, dict):
            break
        target = nxt
    keys = list(target)
    target[keys[path[-1] % len(keys)] if path[-1] < 45 else "extra"] = value  # or add one
    _decodes_or_refuses(orjson.dumps(doc))


@settings(max_examples=200, deadline=None)
@given(sample=st.sampled_from(SAMPLES), cut=st.integers(min_value=0), flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=4))
def test_damaged_event_bytes_decode_or_raise_decode_error(sample: Event, cut: int, flips: list[tuple[int, int]]) -> None:
    raw = bytearray(encode_event(sample))
    for position, mask in flips:
        raw[position % len(raw)] ^= mask
    _decodes_or_refuses(bytes(raw[: cut % (len(raw) + 1)] if cut % 3 == 0 else raw))


# ----- limits on bodies, lists and strings ---------------------------------------------


def test_bodies_lists_and_strings_are_bounded(api: Api, settings: Settings) -> None:
    ana = api.sign_up("ana_limits")
    r = api.request("POST", "/v1/posts", ana, content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413  # JSON bodies: 64 KiB
    r = api.request("POST", "/v1/posts", ana, json={"caption": "x" * 2201, "media_ids": []})
    assert r.status_code == 422
    r = api.request("POST", "/v1/posts", ana, json={"caption": "x", "media_ids": ["1"] * 11})
    assert r.status_code == 422
    r = api.request("POST", "/v1/accounts", json={"username": "u" * 31, "password": "password123"})
    assert r.status_code == 422
    r = api.request("POST", "/v1/accounts", json={"username": "ana_long_pw", "password": "p" * 1025})
    assert r.status_code == 422
    r = api.request("PATCH", "/v1/accounts/me", ana, json={"bio": "b" * 1001})
    assert r.status_code == 422
    r = api.request("GET", "/v1/feed", ana, params={"limit": 101})
    assert r.status_code == 422
    r = api.request("GET", "/v1/feed", ana, params={"cursor": "c" * 65})
    assert r.status_code == 422
    r = api.request("GET", "/v1/feed", ana, headers={"X-Consistency-Token": "t" * 513})
    assert r.status_code == 400
    r = api.request("GET", "/v1/accounts/me", headers={"Authorization": "Bearer " + "a" * 600})
    assert r.status_code == 401
    big = settings.max_upload_bytes + 200_000
    r = api.request("POST", "/v1/media", ana, files={"file": ("big.jpg", b"\xff\xd8\xff" + b"0" * big, "image/jpeg")})
    assert r.status_code == 413
