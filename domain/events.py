"""Domain events and the one envelope every event travels in.

Events are facts: a stored event never changes meaning. A new shape of a type gets a new
VERSION and an upcaster in UPCASTERS that lifts the old shape on read, so old logs replay.
"""
from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar

import orjson


class EventDecodeError(ValueError):
    """Bytes from the log that are not a well-formed event."""


@dataclass(frozen=True)
class DomainEvent:
    """Base of every event payload. Subclasses set TYPE and VERSION."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    # Fields never exported to analysts (tail, export): they stay in the log only.
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()


@dataclass(frozen=True)
class UnknownEvent(DomainEvent):
    """An event type this code does not know (written by a newer version): skipped."""

    raw: dict[str, Any] = field(default_factory=dict)


# ----- value objects carried inside events ------------------------------------------


@dataclass(frozen=True)
class ImageVariant:
    key: str  # media store key, e.g. "7312.../small-3f2a....jpg"
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class MediaRef:
    """What a post or profile needs to know of a stored photo, copied into its events."""

    media_id: str
    content_type: str
    width: int
    height: int
    variants: dict[str, ImageVariant]


# ----- accounts ----------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRegistered(DomainEvent):
    TYPE: ClassVar[str] = "AccountRegistered"
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"password_hash"})
    account_id: str
    username: str
    display_name: str
    password_hash: str


@dataclass(frozen=True)
class ProfileUpdated(DomainEvent):
    """The whole public profile after the change, so applying it twice is harmless."""

    TYPE: ClassVar[str] = "ProfileUpdated"
    account_id: str
    display_name: str
    bio: str
    avatar: MediaRef | None
    private: bool


@dataclass(frozen=True)
class SessionsRevoked(DomainEvent):
    """The account signed out everywhere: every token of an older session generation is
    refused from now on. Carries the new generation (absolute), so replays are harmless."""

    TYPE: ClassVar[str] = "SessionsRevoked"
    account_id: str
    generation: int


# ----- media and posts ---------------------------------------------------------------


@dataclass(frozen=True)
class MediaStored(DomainEvent):
    TYPE: ClassVar[str] = "MediaStored"
    media_id: str
    owner_id: str
    media: MediaRef


@dataclass(frozen=True)
class PostCreated(DomainEvent):
    """v2: `mentions` are the account ids the caption's @usernames resolved to when the
    post was made (v1 carried the unresolved usernames; the caption still has them)."""

    TYPE: ClassVar[str] = "PostCreated"
    VERSION: ClassVar[int] = 2
    post_id: str
    author_id: str
    caption: str
    media: tuple[MediaRef, ...]
    tags: tuple[str, ...]
    mentions: tuple[str, ...]  # account ids


@dataclass(frozen=True)
class PostEdited(DomainEvent):
    """v2: `mentions` are account ids, as in PostCreated v2."""

    TYPE: ClassVar[str] = "PostEdited"
    VERSION: ClassVar[int] = 2
    post_id: str
    author_id: str
    caption: str
    tags: tuple[str, ...]
    mentions: tuple[str, ...]  # account ids


@dataclass(frozen=True)
class PostDeleted(DomainEvent):
    TYPE: ClassVar[str] = "PostDeleted"
    post_id: str
    author_id: str


# ----- the social graph --------------------------------------------------------------


@dataclass(frozen=True)
class Followed(DomainEvent):
    TYPE: ClassVar[str] = "Followed"
    follower_id: str
    followee_id: str
    follow_id: str  # time-sortable: orders follower lists newest first


@dataclass(frozen=True)
class Unfollowed(DomainEvent):
    TYPE: ClassVar[str] = "Unfollowed"
    follower_id: str
    followee_id: str


@dataclass(frozen=True)
class TimelineRebuildRequested(DomainEvent):
    """A reader whose home timeline was left behind while they were away opened their
    feed: the home_timeline projector rebuilds it (and counts the reader as seen)."""

    TYPE: ClassVar[str] = "TimelineRebuildRequested"
    reader_id: str


@dataclass(frozen=True)
class FollowRequested(DomainEvent):
    """A follow of a private account, waiting for its owner (stream follow-<a>-<b>)."""

    TYPE: ClassVar[str] = "FollowRequested"
    follower_id: str
    followee_id: str
    request_id: str  # time-sortable: orders the owner's pending requests newest first


@dataclass(frozen=True)
class FollowRequestDeclined(DomainEvent):
    """The owner turned a request down (or blocked the requester)."""

    TYPE: ClassVar[str] = "FollowRequestDeclined"
    follower_id: str
    followee_id: str


@dataclass(frozen=True)
class FollowRequestCancelled(DomainEvent):
    """The requester withdrew the request (unfollow, or blocked the owner)."""

    TYPE: ClassVar[str] = "FollowRequestCancelled"
    follower_id: str
    followee_id: str


# An approved request is recorded as Followed (actor: the owner) in the same stream, so
# every reader of the follow graph sees an approval as the follow it is.


@dataclass(frozen=True)
class Blocked(DomainEvent):
    """Stream block-<blocker>-<blocked>. The follows both ways end with their own
    Unfollowed / request events, appended by the same command."""

    TYPE: ClassVar[str] = "Blocked"
    blocker_id: str
    blocked_id: str


@dataclass(frozen=True)
class Unblocked(DomainEvent):
    TYPE: ClassVar[str] = "Unblocked"
    blocker_id: str
    blocked_id: str


@dataclass(frozen=True)
class Muted(DomainEvent):
    """Stream mute-<muter>-<muted>: hides the muted account's posts from the muter's feed."""

    TYPE: ClassVar[str] = "Muted"
    muter_id: str
    muted_id: str


@dataclass(frozen=True)
class Unmuted(DomainEvent):
    TYPE: ClassVar[str] = "Unmuted"
    muter_id: str
    muted_id: str


# ----- engagement --------------------------------------------------------------------


@dataclass(frozen=True)
class Liked(DomainEvent):
    TYPE: ClassVar[str] = "Liked"
    post_id: str
    account_id: str
    post_author_id: str
    like_id: str  # time-sortable: orders "who liked" newest first


@dataclass(frozen=True)
class Unliked(DomainEvent):
    TYPE: ClassVar[str] = "Unliked"
    post_id: str
    account_id: str
    post_author_id: str


@dataclass(frozen=True)
class CommentAdded(DomainEvent):
    """v2 adds `mentions`: the account ids the text's @usernames resolved to."""

    TYPE: ClassVar[str] = "CommentAdded"
    VERSION: ClassVar[int] = 2
    comment_id: str
    post_id: str
    author_id: str
    post_author_id: str
    text: str
    mentions: tuple[str, ...] = ()  # account ids


@dataclass(frozen=True)
class CommentDeleted(DomainEvent):
    TYPE: ClassVar[str] = "CommentDeleted"
    comment_id: str
    post_id: str
    author_id: str


# ----- notifications and direct messages ---------------------------------------------


@dataclass(frozen=True)
class NotificationsRead(DomainEvent):
    """The account has seen its notifications up to (and including) activity id up_to."""

    TYPE: ClassVar[str] = "NotificationsRead"
    account_id: str
    up_to: str


@dataclass(frozen=True)
class MessageSent(DomainEvent):
    TYPE: ClassVar[str] = "MessageSent"
    message_id: str  # time-sortable: orders a conversation newest first
    conversation_id: str  # "<lower account id>-<higher account id>": one per pair
    sender_id: str
    recipient_id: str
    text: str
    media: tuple[MediaRef, ...]


@dataclass(frozen=True)
class ConversationRead(DomainEvent):
    """reader_id has read the conversation up to (and including) message id up_to."""

    TYPE: ClassVar[str] = "ConversationRead"
    conversation_id: str
    reader_id: str
    up_to: str


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.TYPE: cls
    for cls in (
        AccountRegistered,
        ProfileUpdated,
        SessionsRevoked,
        MediaStored,
        PostCreated,
        PostEdited,
        PostDeleted,
        Followed,
        Unfollowed,
        TimelineRebuildRequested,
        FollowRequested,
        FollowRequestDeclined,
        FollowRequestCancelled,
        Blocked,
        Unblocked,
        Muted,
        Unmuted,
        Liked,
        Unliked,
        CommentAdded,
        CommentDeleted,
        NotificationsRead,
        MessageSent,
        ConversationRead,
    )
}

# (type, version) -> function lifting that version's data dict to version + 1.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _mentions_resolved_to_nobody(data: dict[str, Any]) -> dict[str, Any]:
    """v1 posts carried unresolved @usernames, and v1 comments none. Nobody was notified
    of them then, and resolving a name now could name a different account: no ids."""
    return {**data, "mentions": []}


UPCASTERS[("PostCreated", 1)] = _mentions_resolved_to_nobody
UPCASTERS[("PostEdited", 1)] = _mentions_resolved_to_nobody
UPCASTERS[("CommentAdded", 1)] = _mentions_resolved_to_nobody


# ----- the envelope ------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    version: int
    stream: str
    occurred_at: datetime
    actor: str | None
    correlation_id: str
    causation_id: str | None
    data: DomainEvent


@dataclass(frozen=True)
class Recorded:
    """An event as read back from the log, with where it sits there."""

    event: Event
    partition: int
    position: int  # offset within the partition (embedded: the global position)
    stream_version: int = 0  # 1-based index within its stream, where the store knows it


def utc_now() -> datetime:
    """Now, in UTC, to the millisecond: the precision events keep on the wire."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _to_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def new_event(
    data: DomainEvent,
    *,
    stream: str,
    actor: str | None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        type=data.TYPE,
        version=data.VERSION,
        stream=stream,
        occurred_at=_to_millisecond(occurred_at) if occurred_at else utc_now(),
        actor=actor,
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=causation_id,
        data=data,
    )


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds: the one time format on the wire."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return moment.astimezone(timezone.utc)


def event_to_dict(event: Event, *, redact: bool = False) -> dict[str, Any]:
    data = dataclasses.asdict(event.data) if not isinstance(event.data, UnknownEvent) else event.data.raw
    if redact:
        for name in type(event.data).SECRET_FIELDS:
            if name in data:
                data[name] = "[redacted]"
    return {
        "event_id": event.event_id,
        "type": event.type,
        "version": event.version,
        "stream": event.stream,
        "occurred_at": format_time(event.occurred_at),
        "actor": event.actor,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "data": data,
    }


def encode_event(event: Event) -> bytes:
    return orjson.dumps(event_to_dict(event))


def decode_event(raw: bytes | str) -> Event:
    """Parse one stored event, upcasting old versions; unknown types become UnknownEvent."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"event is not valid JSON: {exc}") from exc
    return event_from_plain(doc)


def event_from_plain(doc: Any) -> Event:
    """An event from its parsed JSON document (decode_event without the parsing)."""
    if not isinstance(doc, dict):
        raise EventDecodeError("event is not a JSON object")
    try:
        type_name = _expect(doc, "type", str)
        version = _expect(doc, "version", int)
        data = _expect(doc, "data", dict)
        cls = EVENT_TYPES.get(type_name)
        if cls is None:
            payload: DomainEvent = UnknownEvent(raw=data)
        else:
            while version < cls.VERSION:
                upcast = UPCASTERS.get((type_name, version))
                if upcast is None:
                    raise EventDecodeError(f"no upcaster for {type_name} v{version}")
                data, version = upcast(data), version + 1
            if version > cls.VERSION:
                payload = UnknownEvent(raw=data)  # written by newer code
            else:
                payload = from_plain(cls, data)
        causation = doc.get("causation_id")
        actor = doc.get("actor")
        if causation is not None and not isinstance(causation, str):
            raise EventDecodeError("causation_id must be a string or null")
        if actor is not None and not isinstance(actor, str):
            raise EventDecodeError("actor must be a string or null")
        return Event(
            event_id=_expect(doc, "event_id", str),
            type=type_name,
            version=version,
            stream=_expect(doc, "stream", str),
            occurred_at=parse_time(_expect(doc, "occurred_at", str)),
            actor=actor,
            correlation_id=_expect(doc, "correlation_id", str),
            causation_id=causation,
            data=payload,
        )
    except EventDecodeError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise EventDecodeError(f"malformed event: {exc}") from exc


def _expect(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EventDecodeError(f"event field {name!r} must be {kind.__name__}")
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def from_plain(cls: type, data: Any) -> Any:
    """Build a (nested) frozen dataclass from JSON-shaped data, checking every type."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be an object")
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            raise TypeError(f"{cls.__name__} lacks field {f.name!r}")
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{cls.__name__}.{f.name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError(f"{where} must be a list")
        (inner, _) = typing.get_args(hint)
        return tuple(_coerce(inner, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{where} must be an object")
        _, inner = typing.get_args(hint)
        return {str(k): _coerce(inner, v, where) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_plain(hint, value)
    if hint is Any:
        return value
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{where} must be an integer")
    if hint is not int and not isinstance(value, hint):
        raise TypeError(f"{where} must be {hint.__name__}")
    return value
