"""Every projection photostream runs, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from projections.accounts import Accounts
from projections.comments import Comments
from projections.followers import Followers
from projections.follow_requests import FollowRequests
from projections.following import Following
from projections.home_timeline import HomeTimeline
from projections.likes import Likes
from projections.posts import Posts
from projections.posts_by_author import PostsByAuthor
from projections.posts_by_tag import PostsByTag
from projections.projector import Projector
from projections.store import Table
from projections.visibility import Visibility


@dataclass(frozen=True)
class ProjectionSettings:
    timeline_max: int = 800
    backfill: int = 50
    trim_every: int = 16


def all_projectors(settings: ProjectionSettings | None = None) -> list[Projector]:
    settings = settings or ProjectionSettings()
    return [
        Accounts(),
        Followers(),
        Following(),
        Posts(),
        PostsByAuthor(),
        PostsByTag(),
        Likes(),
        Comments(),
        FollowRequests(),
        Visibility(),
        HomeTimeline(timeline_max=settings.timeline_max, backfill=settings.backfill, trim_every=settings.trim_every),
    ]


def all_tables(projectors: list[Projector]) -> list[Table]:
    return [t for p in projectors for t in p.tables]
