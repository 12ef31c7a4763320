"""Operations: liveness and readiness."""
from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from api import schemas
from api.http import BackendDep, JSONResponse

router = APIRouter(tags=["operations"])


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
