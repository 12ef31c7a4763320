"""Operations: liveness and readiness."""
from __future__ import annotations

import dataclasses
import logging

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from observability.metrics import REGISTRY, Metric

from api import schemas
from api.http import BackendDep, JSONResponse

router = APIRouter(tags=["operations"])
log = logging.getLogger("photostream.api")
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", response_model=schemas.Health)
async def healthz() -> JSONResponse:
    """200 while the process is alive."""
    return JSONResponse({"status": "ok", "checks": {}})


@router.get("/readyz", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
async def readyz(backend: BackendDep) -> JSONResponse:
    """200 when every backing service answers, else 503 naming the ones that do not."""
    checks: dict[str, str] = {}
    for name, probe in (("event_store", backend.events.ping), ("media_store", backend.media.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            checks[name] = f"down: {exc}"
    try:
        await backend.query(lambda views: views.ping())
        checks["read_store"] = "ok"
    except Exception as exc:
        checks["read_store"] = f"down: {exc}"
    if backend.runner is not None and backend.runner.error is not None:
        checks["projections"] = f"stopped: {backend.runner.error}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "5"},
    )


@router.get("/v1/projections", response_model=schemas.Projections)
async def projections(backend: BackendDep) -> JSONResponse:
    """Each projection's version, how many events it has applied, and its lag behind the
    log (events, and seconds since the event it has applied up to while behind)."""
    items = []
    for progress in await backend.progress():
        item = dataclasses.asdict(progress)
        item["partitions"] = [
            {"partition": p, "position": position, "lag_events": lag} for p, (position, lag) in sorted(progress.partitions.items())
        ]
        items.append(item)
    return JSONResponse({"items": items})


@router.get("/metrics", include_in_schema=False)
async def metrics(backend: BackendDep) -> PlainTextResponse:
    """Prometheus text format: this process's counters and histograms (requests, events
    appended, fan-out batch sizes, unknown events skipped) and, computed now, each
    projection's version, position and lag per partition, and the dead letters."""
    extra: list[Metric] = []
    try:
        progress = await backend.progress()
        letters = await backend.query(lambda views: views.dead_letters())
    except Exception as exc:  # the store is away: say so, keep the process metrics
        up = Metric("photostream_read_store_up", "1 when the read store answered this scrape.", "gauge")
        up.set(0)
        log.warning("metrics: read store not answering: %s", exc)
        return PlainTextResponse(REGISTRY.render([up]), media_type=PROMETHEUS)
    version = Metric("photostream_projection_version", "Active version of each projection.", "gauge")
    position = Metric("photostream_projection_position", "Log position each projection has applied up to, per partition.", "gauge")
    lag = Metric("photostream_projection_lag_events", "Events in the log a projection has not applied yet, per partition.", "gauge")
    lag_seconds = Metric("photostream_projection_lag_seconds", "Age of the event a projection has applied up to, while behind.", "gauge")
    dead = Metric("photostream_dead_letters", "Events parked because a projection could not apply them.", "gauge")
    head = Metric("photostream_log_events", "Events in the log (sum over partitions).", "gauge")
    for p in progress:
        version.set(p.version, projection=p.name)
        lag_seconds.set(p.lag_seconds if p.lag_seconds is not None else float("nan"), projection=p.name)
        dead.set(0, projection=p.name)
        for partition, (reached, behind) in p.partitions.items():
            position.set(reached, projection=p.name, partition=str(partition))
            lag.set(behind, projection=p.name, partition=str(partition))
    for letter in letters:
        dead.inc(projection=letter.projection)
    if progress:
        head.set(progress[0].position + progress[0].lag_events)
    up = Metric("photostream_read_store_up", "1 when the read store answered this scrape.", "gauge")
    up.set(1)
    extra = [version, position, lag, lag_seconds, dead, head, up]
    return PlainTextResponse(REGISTRY.render(extra), media_type=PROMETHEUS)
