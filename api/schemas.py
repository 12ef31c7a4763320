"""Request and response shapes of the HTTP contract (docs/API.md), for validation and
the OpenAPI document. Responses are built by api.presenters as plain dicts of these
shapes and sent with orjson."""
from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ----- requests -----------------------------------------------------------------------


class SignUp(Strict):
    username: str = Field(max_length=64, examples=["ana"])
    password: str = Field(max_length=1024, examples=["correct horse battery"])
    display_name: str | None = Field(None, max_length=256, examples=["Ana"])


class SignIn(Strict):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class ProfilePatch(Strict):
    display_name: str | None = Field(None, max_length=256)
    bio: str | None = Field(None, max_length=1024)
    avatar_media_id: str | None = Field(None, max_length=20, pattern=r"^[0-9]+$")
    private: bool | None = None


class NewPost(Strict):
    caption: str = Field("", max_length=10_000)
    media_ids: list[str] = Field(min_length=1, max_length=10)


class PostPatch(Strict):
    caption: str = Field(max_length=10_000)


class NewComment(Strict):
    text: str = Field(max_length=10_000)


# ----- responses ----------------------------------------------------------------------


class MediaUrls(BaseModel):
    thumb: str
    small: str
    large: str
    original: str


class Media(BaseModel):
    id: str
    content_type: str
    width: int
    height: int
    urls: MediaUrls


class Account(BaseModel):
    id: str
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    private: bool
    followers_count: int
    following_count: int
    posts_count: int
    created_at: str


class AccountSeen(Account):
    """An Account as a signed-in reader sees someone else's (GET /v1/accounts/{username}):
    these fields are present only then."""

    following: bool | None = Field(None, description="you follow this account")
    requested: bool | None = Field(None, description="you asked to follow this private account; pending")
    blocking: bool | None = Field(None, description="you block this account")
    muting: bool | None = Field(None, description="you muted this account")


class Session(BaseModel):
    account: Account
    token: str


class Post(BaseModel):
    id: str
    author: Account
    caption: str
    media: list[Media]
    tags: list[str]
    mentions: list[str]
    created_at: str
    edited_at: str | None
    like_count: int
    comment_count: int
    liked_by_me: bool


class Comment(BaseModel):
    id: str
    post_id: str
    author: Account
    text: str
    tags: list[str] = []  # hashtags in the text, as a caption's (they do not list the post on tag pages)
    mentions: list[str] = []  # @usernames in the text
    created_at: str


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class TagHit(BaseModel):
    name: str
    post_count: int


class Suggestion(Account):
    followed_by_count: int


class FollowPath(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: Account = Field(alias="from")
    to: Account
    found: bool
    length: int | None
    path: list[Account]
    max_depth: int
    complete: bool
    detail: str | None = None


class Following(BaseModel):
    following: bool
    requested: bool | None = Field(None, description="present on follow: true when a private account was asked")


class Blocking(BaseModel):
    blocking: bool


class Muting(BaseModel):
    muting: bool


class FollowRequestAnswer(BaseModel):
    username: str
    approved: bool


class LikeState(BaseModel):
    liked: bool


class Problem(BaseModel):
    """Every error answer: a sentence (or FastAPI's list of field errors for a 422), and
    the field at fault where there is one."""

    detail: str | list[dict[str, object]]
    field: str | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class ProjectionState(BaseModel):
    name: str
    version: int
    position: int
    lag_events: int
    lag_seconds: float | None
    status: str
    building: int | None = None


class Projections(BaseModel):
    items: list[ProjectionState]


# ----- notifications and direct messages (issue 6) ------------------------------------


class NewMessage(Strict):
    to: str = Field(max_length=64, description="the recipient's username")
    text: str = Field("", max_length=10_000)
    media_ids: list[str] = Field([], max_length=10)


class ReadMark(Strict):
    up_to: str | None = Field(None, max_length=20, pattern=r"^[0-9]+$", description="an id; default: everything so far")


class PostSummary(BaseModel):
    id: str
    caption: str
    thumb_url: str | None


class CommentSummary(BaseModel):
    id: str
    text: str


class Notification(BaseModel):
    id: str
    kind: str
    actors: list[Account]
    actors_count: int
    post: PostSummary | None
    comment: CommentSummary | None
    activity_id: str
    created_at: str
    read: bool


class UnreadCounts(BaseModel):
    notifications: int
    messages: int


class ReadState(BaseModel):
    up_to: str


class Message(BaseModel):
    id: str
    conversation_id: str
    sender_id: str
    text: str
    media: list[Media]
    created_at: str


class Conversation(BaseModel):
    id: str
    with_: Account | None = Field(alias="with")
    last_message: Message | None = None
    unread_count: int
    read_up_to: str | None
