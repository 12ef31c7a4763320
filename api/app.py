"""The FastAPI application: routes, error answers, the web app's files."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import BadRequest, Conflict, DomainError, InvalidInput, NotAllowed, NotAuthenticated, NotFound
from media.images import CorruptImage, ImageTooLarge, MediaError, UnsupportedImage
from media.store import MediaStoreUnavailable
from projections.store import ReadStoreUnavailable
from streams.event_store import ConcurrencyError, EventStoreUnavailable

from observability.metrics import REQUEST_SECONDS

from api.http import HttpError, JSONResponse
from api.middleware import PhotostreamMiddleware
from api.live import start_live
from api.mastodon import routes as mastodon_routes, streaming as mastodon_streaming
from api.mastodon.common import is_mastodon_path
from api.openapi import install_openapi
from api.ratelimit import RateLimiter
from api.routes import accounts, discovery, feed, media, messages, notifications, ops, posts, stream, tags
from api.settings import Settings
from api.wiring import Backend, open_backend

log = logging.getLogger("photostream.api")


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.observe(seconds, method=method, route=route, status=str(status))
WEB_DIR = Path(__file__).parent / "web"

DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (InvalidInput, 422),
    (BadRequest, 400),
    (NotFound, 404),
    (NotAllowed, 403),
    (Conflict, 409),
    (NotAuthenticated, 401),
]
MEDIA_STATUS: list[tuple[type[MediaError], int]] = [(ImageTooLarge, 413), (UnsupportedImage, 415), (CorruptImage, 422)]


def _problem(status: int, detail: object, headers: dict[str, str] | None = None, request: Request | None = None) -> JSONResponse:
    if request is not None and is_mastodon_path(request.url.path):
        return _mastodon_problem(status, detail, headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _mastodon_problem(status: int, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    """Mastodon's error shape, {"error": "..."}, on the Mastodon API's paths."""
    if isinstance(detail, list):  # request validation errors: one sentence
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'} {e.get('msg', '')}".strip() for e in detail if isinstance(e, dict)]
        detail = "Validation failed: " + "; ".join(parts)
    return JSONResponse({"error": str(detail)}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HttpError)
    async def http_error(request: Request, exc: HttpError) -> JSONResponse:
        return _problem(exc.status, exc.detail, exc.headers, request)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        status = next((code for kind, code in DOMAIN_STATUS if isinstance(exc, kind)), 400)
        if is_mastodon_path(request.url.path):
            # Mastodon answers every invalid request 422 (a taken username too).
            return _mastodon_problem(422 if status in (400, 409) else status, exc.message)
        body: dict[str, object] = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=status)

    @app.exception_handler(MediaError)
    async def media_error(request: Request, exc: MediaError) -> JSONResponse:
        status = next((code for kind, code in MEDIA_STATUS if isinstance(exc, kind)), 415)
        return _problem(status, str(exc), None, request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _problem(400, "the request body is not valid JSON", None, request)
        # ctx may hold exception objects that JSON cannot carry; keep the useful parts.
        cleaned = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in errors]
        return _problem(422, cleaned, None, request)

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, exc.detail, getattr(exc, "headers", None), request)

    @app.exception_handler(ConcurrencyError)
    async def busy(request: Request, exc: ConcurrencyError) -> JSONResponse:
        return _problem(409, "this changed while you changed it; try again", {"Retry-After": "1"}, request)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("backing service unavailable: %s", exc)
        return _problem(503, "a backing service is not answering; try again shortly", {"Retry-After": "5"}, request)

    app.add_exception_handler(EventStoreUnavailable, unavailable)
    app.add_exception_handler(MediaStoreUnavailable, unavailable)
    app.add_exception_handler(ReadStoreUnavailable, unavailable)  # Cassandra down or timing out

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug: say so in the log with the traceback (never the request body or headers).
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return _problem(500, "something went wrong on our side; it has been logged", None, request)

    app.add_exception_handler(Exception, unexpected)


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> FastAPI:
    settings = settings or Settings()
    owned = backend is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.backend is None:
            app.state.backend = open_backend(settings)
        await app.state.backend.start()
        app.state.live, close_live = await start_live(app.state.backend)
        try:
            yield
        finally:
            await close_live()
            if owned:
                await app.state.backend.close()

    app = FastAPI(
        title="photostream",
        version="1",
        summary="A photo-sharing social network, event-sourced.",
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )
    app.state.backend = backend
    app.state.rate_limiter = RateLimiter(settings.rate_limits, settings.rate_limit_scale)
    install_error_handlers(app)
    for router in (accounts.router, media.router, posts.router, feed.router, tags.router, discovery.router, ops.router):
        app.include_router(router)
    for router in (notifications.router, messages.router, stream.router):
        app.include_router(router)
    # The Mastodon client API: an adapter over the same commands and read models.
    app.include_router(mastodon_routes.router)
    app.include_router(mastodon_streaming.router)
    if WEB_DIR.is_dir():
        app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html")

    app.add_middleware(PhotostreamMiddleware, upload_limit=settings.max_upload_bytes, observe=observe_request)
    install_openapi(app)
    return app
