"""Rate limits: token buckets per action, per account and per client address.

Each limited action (sign-in, sign-up, posting, liking, following, messaging...) has two
buckets a request must both pass: one keyed by the account it acts as (for sign-in: the
username it tries, which is what a password guesser targets) and one by the client
address. A refused request answers 429 with Retry-After (seconds until one token is back)
and takes no token.

The buckets live in this process. With one API process that is exact; with N API
processes behind a balancer each keeps its own, so a client may get up to N times the
limit (less when the balancer pins clients). That is the accepted trade: no shared store
on every request. A deployment with many API processes that needs exact limits puts them
in the balancer or a shared store (docs/SECURITY.md).
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from fastapi import Request

from api.http import HttpError
from api.schemas import Problem

# Defaults: "<burst>/<seconds>". Generous for people, tight for scripts.
DEFAULT_LIMITS: dict[str, dict[str, str]] = {
    "sign_in": {"account": "10/300", "address": "30/300"},
    "sign_up": {"address": "20/3600"},
    "post": {"account": "30/3600", "address": "120/3600"},
    "upload": {"account": "60/3600", "address": "240/3600"},
    "comment": {"account": "60/600", "address": "240/600"},
    "like": {"account": "300/600", "address": "1200/600"},
    "follow": {"account": "120/600", "address": "480/600"},
    "message": {"account": "120/600", "address": "480/600"},
}
SCOPES = ("account", "address")
MAX_BUCKETS = 100_000  # beyond this the least recently used (mostly full) buckets go


@dataclass(frozen=True)
class Rate:
    burst: float
    per_second: float  # refill

    @staticmethod
    def parse(text: str, scale: float = 1.0) -> Rate:
        try:
            burst_text, _, seconds_text = text.partition("/")
            burst, seconds = float(burst_text), float(seconds_text)
        except ValueError as exc:
            raise ValueError(f"rate limit {text!r} must be '<burst>/<seconds>', e.g. '10/60'") from exc
        if burst < 0 or seconds <= 0:
            raise ValueError(f"rate limit {text!r}: the burst must be >= 0 and the seconds > 0")
        return Rate(burst * scale, burst / seconds)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        overrides: dict[str, dict[str, str]] | None = None,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        merged = {action: dict(scopes) for action, scopes in DEFAULT_LIMITS.items()}
        for action, scopes in (overrides or {}).items():
            unknown = set(scopes) - set(SCOPES)
            if unknown:
                raise ValueError(f"rate limit scopes are {', '.join(SCOPES)}; not {', '.join(sorted(unknown))}")
            merged.setdefault(action, {}).update(scopes)
        self.rates = {
            (action, scope): Rate.parse(text, scale)
            for action, scopes in merged.items()
            for scope, text in scopes.items()
            if not text.startswith("0/")
        }
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str, str], _Bucket] = OrderedDict()

    def check(self, action: str, *, account: str | None, address: str | None) -> None:
        """Take one token from each applicable bucket, or raise 429 taking none."""
        now = self.clock()
        keys = [(action, scope, key) for scope, key in (("account", account), ("address", address)) if key and (action, scope) in self.rates]
        waits = [self._wait(k, now) for k in keys]
        worst = max(waits, default=0.0)
        if worst > 0:
            raise HttpError(
                429,
                f"too many {action.replace('_', ' ')} requests; try again in {math.ceil(worst)} s",
                {"Retry-After": str(math.ceil(worst))},
            )
        for k in keys:
            self._buckets[k].tokens -= 1

    def _wait(self, key: tuple[str, str, str], now: float) -> float:
        """Refill the bucket to now; the seconds until it holds one token (0: it does)."""
        rate = self.rates[(key[0], key[1])]
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(rate.burst, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(rate.burst, bucket.tokens + (now - bucket.updated) * rate.per_second)
            bucket.updated = now
        if bucket.tokens >= 1:
            return 0.0
        if rate.per_second <= 0:
            return 3600.0
        return max((1 - bucket.tokens) / rate.per_second, 0.001)


# OpenAPI: the answer of a limited route when a bucket is empty.
LIMITED: dict[int | str, dict[str, object]] = {
    429: {"model": Problem, "description": "rate limited; Retry-After says when to try again", "headers": {"Retry-After": {"schema": {"type": "integer"}}}}
}


def limit(request: Request, action: str, account: str | None) -> None:
    """Count one `action` against the account and the client's address (429 when over)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return
    address = request.client.host if request.client else None
    limiter.check(action, account=account, address=address)
