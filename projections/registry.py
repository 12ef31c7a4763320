"""Every projection photostream runs, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from projections.accounts import Accounts
from projections.comment_index import CommentIndex
from projections.comments import Comments
from projections.conversations import Conversations
from projections.explore import Explore
from projections.followers import Followers
from projections.follow_requests import FollowRequests
from projections.following import Following
from projections.home_timeline import HomeTimeline
from projections.liked_posts import LikedPosts
from projections.likes import Likes
from projections.notifications import Notifications
from projections.post_changes import PostChanges
from projections.posts import Posts
from projections.posts_by_author import PostsByAuthor
from projections.posts_by_tag import PostsByTag
from projections.projector import Projector
from projections.sessions import Sessions
from projections.search import Search
from projections.store import Table
from projections.visibility import Visibility


@dataclass(frozen=True)
class ProjectionSettings:
    timeline_max: int = 800
    backfill: int = 50
    trim_every: int = 16
    celebrity_threshold: int = 10_000
    celebrity_demote: int | None = None  # None: 90% of the threshold
    pull_sources: int = 50
    inactive_days: int = 30
    notification_group_hours: float = 12


def all_projectors(settings: ProjectionSettings | None = None) -> list[Projector]:
    settings = settings or ProjectionSettings()
    return [
        Accounts(),
        Followers(),
        Following(),
        Posts(),
        PostChanges(),
        PostsByAuthor(),
        PostsByTag(),
        Likes(),
        LikedPosts(),
        Comments(),
        Sessions(),
        HomeTimeline(
            timeline_max=settings.timeline_max,
            backfill=settings.backfill,
            trim_every=settings.trim_every,
            celebrity_threshold=settings.celebrity_threshold,
            celebrity_demote=settings.celebrity_demote,
            pull_sources=settings.pull_sources,
            inactive_days=settings.inactive_days,
        ),
        FollowRequests(),
        Visibility(),
        Search(),
        Explore(),
        Notifications(group_hours=settings.notification_group_hours),
        Conversations(),
        CommentIndex(),
    ]


def all_tables(projectors: list[Projector]) -> list[Table]:
    return [t for p in projectors for t in p.tables]
