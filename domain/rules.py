"""The rules that decide whether a command is allowed. Pure functions, no I/O."""
from __future__ import annotations

import re
import unicodedata

from domain.errors import BadRequest, InvalidInput, NotAllowed, NotFound

USERNAME_RE = re.compile(r"[a-z0-9._]{1,30}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
DISPLAY_NAME_MAX = 64
BIO_MAX = 150
CAPTION_MAX = 2200
TAGS_MAX = 30
TAG_MAX_LENGTH = 100
COMMENT_MAX = 2200
MEDIA_PER_POST_MAX = 10
MENTIONS_MAX = 20  # distinct @mentions a caption or comment may hold (each may notify)
MESSAGE_MAX = 2000
MEDIA_PER_MESSAGE_MAX = 4

# A hashtag is '#' then Unicode letters (with their combining marks, so Devanagari or
# Thai words stay whole), digits or '_', not glued to a preceding word.
TAG_START_RE = re.compile(r"(?<![\w&])#(?=\w)", re.UNICODE)
# A mention is '@' then Unicode letters, digits, '_' and inner '.', not glued to a
# preceding word (so e-mail addresses are not mentions). Names that cannot be usernames
# (too long, or letters outside a-z) are kept as text and resolve to nobody.
MENTION_RE = re.compile(r"(?<![\w@.])@([\w.]+)", re.UNICODE)


def normalize_username(raw: str) -> str:
    """Usernames are case-insensitive: stored and compared in lower case."""
    name = raw.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "username must be 1 to 30 characters of a-z, 0-9, '.' and '_'", field="username"
        )
    return name


def check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters", field="password"
        )


def check_display_name(name: str) -> str:
    name = _clean_text(name).strip()
    if len(name) > DISPLAY_NAME_MAX:
        raise InvalidInput(
            f"display_name must be at most {DISPLAY_NAME_MAX} characters", field="display_name"
        )
    return name


def check_bio(bio: str) -> str:
    bio = _clean_text(bio).strip()
    if len(bio) > BIO_MAX:
        raise InvalidInput(f"bio must be at most {BIO_MAX} characters", field="bio")
    return bio


def normalize_tag(tag: str) -> str:
    """Tags are case-insensitive and compared in NFC lower case."""
    return unicodedata.normalize("NFC", tag).lower()


def parse_tags(text: str) -> tuple[str, ...]:
    """Distinct hashtags in order of first appearance, lower case, without '#'."""
    seen: dict[str, None] = {}
    for match in TAG_START_RE.finditer(text):
        end = match.end()
        while end < len(text) and _is_tag_char(text[end]):
            end += 1
        tag = normalize_tag(text[match.end() : end])
        if len(tag) <= TAG_MAX_LENGTH and not tag.isdigit():
            seen.setdefault(tag, None)
    return tuple(seen)


def _is_tag_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or unicodedata.category(ch) in ("Mn", "Mc")


def parse_mentions(text: str) -> tuple[str, ...]:
    """Distinct @usernames in order of first appearance, NFC lower case (a sentence's
    full stop after a name is not part of it)."""
    seen: dict[str, None] = {}
    for match in MENTION_RE.finditer(text):
        name = normalize_tag(match.group(1).rstrip("."))
        if name and len(name) <= TAG_MAX_LENGTH:
            seen.setdefault(name, None)
    return tuple(seen)


def mentionable(name: str) -> str | None:
    """The username a parsed mention can name, or None when no account can have it."""
    return name if USERNAME_RE.fullmatch(name) else None


def _check_mention_count(mentions: tuple[str, ...], field: str, what: str) -> None:
    if len(mentions) > MENTIONS_MAX:
        raise InvalidInput(
            f"{what} mentions {len(mentions)} people; at most {MENTIONS_MAX} are allowed", field=field
        )


def check_caption(caption: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The cleaned caption with its tags and mentions, or InvalidInput."""
    caption = _clean_text(caption)
    if len(caption) > CAPTION_MAX:
        raise InvalidInput(
            f"caption is {len(caption)} characters; at most {CAPTION_MAX} are allowed",
            field="caption",
        )
    tags = parse_tags(caption)
    if len(tags) > TAGS_MAX:
        raise InvalidInput(
            f"caption has {len(tags)} hashtags; at most {TAGS_MAX} are allowed", field="caption"
        )
    mentions = parse_mentions(caption)
    _check_mention_count(mentions, "caption", "caption")
    return caption, tags, mentions


def check_comment(text: str) -> str:
    text = _clean_text(text)
    if not text.strip():
        raise InvalidInput("comment text must not be empty", field="text")
    if len(text) > COMMENT_MAX:
        raise InvalidInput(
            f"comment is {len(text)} characters; at most {COMMENT_MAX} are allowed", field="text"
        )
    _check_mention_count(parse_mentions(text), "text", "comment")
    return text


def check_message(text: str, media_ids: list[str]) -> str:
    """A direct message: text, photos, or both; never nothing."""
    text = _clean_text(text).strip()
    if not text and not media_ids:
        raise InvalidInput("a message needs text or at least one media id", field="text")
    if len(text) > MESSAGE_MAX:
        raise InvalidInput(f"message is {len(text)} characters; at most {MESSAGE_MAX} are allowed", field="text")
    if len(media_ids) > MEDIA_PER_MESSAGE_MAX:
        raise InvalidInput(
            f"a message holds at most {MEDIA_PER_MESSAGE_MAX} photos, got {len(media_ids)}", field="media_ids"
        )
    if len(set(media_ids)) != len(media_ids):
        raise InvalidInput("media_ids must not repeat a photo", field="media_ids")
    return text


def check_can_message(sender_id: str, recipient_id: str) -> None:
    if sender_id == recipient_id:
        raise BadRequest("you cannot send a message to yourself")


def conversation_id(a: str, b: str) -> str:
    """The one conversation of a pair of accounts, the same whoever writes first."""
    low, high = sorted((a, b), key=int)
    return f"{low}-{high}"


def conversation_members(conversation: str) -> tuple[str, str] | None:
    """The two account ids of a conversation id, or None when it is not one."""
    low, sep, high = conversation.partition("-")
    if not sep or not (low.isascii() and low.isdigit() and high.isascii() and high.isdigit()):
        return None
    if len(low) > 19 or len(high) > 19 or int(low) >= int(high) or str(int(low)) != low or str(int(high)) != high:
        return None
    return low, high


def check_media_ids(media_ids: list[str]) -> list[str]:
    if not 1 <= len(media_ids) <= MEDIA_PER_POST_MAX:
        raise InvalidInput(
            f"a post needs 1 to {MEDIA_PER_POST_MAX} media ids, got {len(media_ids)}",
            field="media_ids",
        )
    if len(set(media_ids)) != len(media_ids):
        raise InvalidInput("media_ids must not repeat a photo", field="media_ids")
    return media_ids


def check_media_usable(media_id: str, owner_id: str | None, actor_id: str) -> None:
    """A post or avatar may only use photos its author uploaded."""
    if owner_id is None:
        raise InvalidInput(f"media {media_id} does not exist", field="media_ids")
    if owner_id != actor_id:
        raise InvalidInput(f"media {media_id} was not uploaded by you", field="media_ids")


def check_can_follow(follower_id: str, followee_id: str) -> None:
    if follower_id == followee_id:
        raise BadRequest("you cannot follow yourself")


def check_not_self(actor_id: str, other_id: str, action: str) -> None:
    """Blocking, muting and approving apply to someone else."""
    if actor_id == other_id:
        raise BadRequest(f"you cannot {action} yourself")


def check_not_blocked(blocking: bool, blocked_by: bool, username: str) -> None:
    """Refuse an interaction between two accounts when either has blocked the other."""
    if blocking:
        raise NotAllowed(f"you have blocked {username}; unblock them first")
    if blocked_by:
        raise NotAllowed(f"{username} has blocked you")


def check_post_exists(post_id: str, exists: bool) -> None:
    if not exists:
        raise NotFound(f"post {post_id} does not exist")


def check_is_author(actor_id: str, author_id: str, what: str = "post") -> None:
    if actor_id != author_id:
        raise NotAllowed(f"only the author may change this {what}")


def check_can_delete_comment(actor_id: str, comment_author_id: str, post_author_id: str) -> None:
    if actor_id not in (comment_author_id, post_author_id):
        raise NotAllowed("only the comment's author or the post's author may delete it")


def _clean_text(text: str) -> str:
    """NFC-normalize and drop control characters other than newlines and tabs."""
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
