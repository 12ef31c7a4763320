"""Write-side state of each aggregate, folded from its own stream of events.

Commands load one of these to decide; nothing here is ever read by the query side.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from domain.events import (
    AccountRegistered,
    CommentAdded,
    CommentDeleted,
    Blocked,
    DomainEvent,
    Followed,
    FollowRequestCancelled,
    FollowRequestDeclined,
    FollowRequested,
    Muted,
    Unblocked,
    Unmuted,
    Liked,
    MediaRef,
    MediaStored,
    PostCreated,
    PostDeleted,
    PostEdited,
    ProfileUpdated,
    SessionsRevoked,
    Unfollowed,
    Unliked,
)


def account_stream(account_id: str) -> str:
    return f"account-{account_id}"


def media_stream(media_id: str) -> str:
    return f"media-{media_id}"


def post_stream(post_id: str) -> str:
    return f"post-{post_id}"


def comment_stream(comment_id: str) -> str:
    return f"comment-{comment_id}"


def follow_stream(follower_id: str, followee_id: str) -> str:
    return f"follow-{follower_id}-{followee_id}"


def block_stream(blocker_id: str, blocked_id: str) -> str:
    return f"block-{blocker_id}-{blocked_id}"


def mute_stream(muter_id: str, muted_id: str) -> str:
    return f"mute-{muter_id}-{muted_id}"


def like_stream(post_id: str, account_id: str) -> str:
    return f"like-{post_id}-{account_id}"


def timeline_stream(reader_id: str) -> str:
    return f"timeline-{reader_id}"


def message_stream(message_id: str) -> str:
    return f"message-{message_id}"


def conversation_read_stream(conversation_id: str, reader_id: str) -> str:
    return f"read-{conversation_id}-{reader_id}"


def notifications_read_stream(account_id: str) -> str:
    return f"notifications-{account_id}"


@dataclass(frozen=True)
class Account:
    account_id: str
    username: str
    display_name: str
    bio: str
    avatar: MediaRef | None
    private: bool
    password_hash: str
    session_generation: int = 0  # raised by SessionsRevoked; tokens carry the one they were issued in


@dataclass(frozen=True)
class Media:
    media_id: str
    owner_id: str
    ref: MediaRef


@dataclass(frozen=True)
class Post:
    post_id: str
    author_id: str
    caption: str
    deleted: bool


@dataclass(frozen=True)
class Comment:
    comment_id: str
    post_id: str
    author_id: str
    deleted: bool


def fold_account(events: Iterable[DomainEvent]) -> Account | None:
    state: Account | None = None
    for e in events:
        if isinstance(e, AccountRegistered):
            state = Account(e.account_id, e.username, e.display_name, "", None, False, e.password_hash)
        elif isinstance(e, ProfileUpdated) and state is not None:
            state = replace(
                state, display_name=e.display_name, bio=e.bio, avatar=e.avatar, private=e.private
            )
        elif isinstance(e, SessionsRevoked) and state is not None:
            state = replace(state, session_generation=e.generation)
    return state


def fold_media(events: Iterable[DomainEvent]) -> Media | None:
    state: Media | None = None
    for e in events:
        if isinstance(e, MediaStored):
            state = Media(e.media_id, e.owner_id, e.media)
    return state


def fold_post(events: Iterable[DomainEvent]) -> Post | None:
    state: Post | None = None
    for e in events:
        if isinstance(e, PostCreated):
            state = Post(e.post_id, e.author_id, e.caption, False)
        elif isinstance(e, PostEdited) and state is not None:
            state = replace(state, caption=e.caption)
        elif isinstance(e, PostDeleted) and state is not None:
            state = replace(state, deleted=True)
    return state


def fold_comment(events: Iterable[DomainEvent]) -> Comment | None:
    state: Comment | None = None
    for e in events:
        if isinstance(e, CommentAdded):
            state = Comment(e.comment_id, e.post_id, e.author_id, False)
        elif isinstance(e, CommentDeleted) and state is not None:
            state = replace(state, deleted=True)
    return state


def fold_following(events: Iterable[DomainEvent]) -> bool:
    """Whether the follow edge of this stream currently exists."""
    following = False
    for e in events:
        if isinstance(e, Followed):
            following = True
        elif isinstance(e, Unfollowed):
            following = False
    return following


NOT_FOLLOWING, REQUESTED, FOLLOWING = "none", "requested", "following"


def fold_follow(events: Iterable[DomainEvent]) -> str:
    """The state of one follow stream: NOT_FOLLOWING, REQUESTED or FOLLOWING."""
    state = NOT_FOLLOWING
    for e in events:
        if isinstance(e, Followed):
            state = FOLLOWING
        elif isinstance(e, FollowRequested):
            state = REQUESTED
        elif isinstance(e, (Unfollowed, FollowRequestDeclined, FollowRequestCancelled)):
            state = NOT_FOLLOWING
    return state


def fold_blocked(events: Iterable[DomainEvent]) -> bool:
    """Whether the block of this stream is in force."""
    blocked = False
    for e in events:
        if isinstance(e, Blocked):
            blocked = True
        elif isinstance(e, Unblocked):
            blocked = False
    return blocked


def fold_muted(events: Iterable[DomainEvent]) -> bool:
    muted = False
    for e in events:
        if isinstance(e, Muted):
            muted = True
        elif isinstance(e, Unmuted):
            muted = False
    return muted


def fold_liked(events: Iterable[DomainEvent]) -> bool:
    liked = False
    for e in events:
        if isinstance(e, Liked):
            liked = True
        elif isinstance(e, Unliked):
            liked = False
    return liked
