"""Helpers shared by the HTTP tests: a thin client speaking the contract, and images."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image


def jpeg(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", quality=90)
    return out.getvalue()


def png(width: int = 32, height: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 30, 128)).save(out, "PNG")
    return out.getvalue()


@dataclass
class User:
    id: str
    username: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """Speaks photostream's HTTP contract as a well-behaved client does: sends its
    consistency token with every request and keeps the one a command answers with (the
    server merges the two), so every read sees every write made before it."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.token: str | None = None

    def request(self, method: str, path: str, user: User | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if user is not None:
            headers.update(user.auth)
        if self.token and "X-Consistency-Token" not in headers:
            headers["X-Consistency-Token"] = self.token
        response = self.http.request(method, path, headers=headers, **kwargs)
        if method != "GET" and "x-consistency-token" in response.headers:
            self.token = response.headers["x-consistency-token"]
        return response

    def ok(self, method: str, path: str, user: User | None = None, status: int = 200, **kwargs: Any) -> Any:
        response = self.request(method, path, user, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def sign_up(self, username: str, password: str = "password123") -> User:
        body = self.ok("POST", "/v1/accounts", status=201, json={"username": username, "password": password})
        return User(body["account"]["id"], body["account"]["username"], body["token"])

    def upload(self, user: User, data: bytes | None = None, filename: str = "photo.jpg") -> dict[str, Any]:
        files = {"file": (filename, data if data is not None else jpeg(), "image/jpeg")}
        return self.ok("POST", "/v1/media", user, status=201, files=files)

    def post(self, user: User, caption: str = "hello", photos: int = 1) -> dict[str, Any]:
        media_ids = [self.upload(user)["id"] for _ in range(photos)]
        return self.ok("POST", "/v1/posts", user, status=201, json={"caption": caption, "media_ids": media_ids})

    def follow(self, user: User, username: str) -> None:
        assert self.ok("POST", f"/v1/accounts/{username}/follow", user) == {"following": True}

    def metrics(self) -> dict[str, float]:
        """GET /metrics as {series (name and labels): value}: the counters of this
        server's process, which other tests share (compare before and after)."""
        response = self.http.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in response.text.splitlines() if line and not line.startswith("#")
        }

    def walk(self, path: str, user: User | None = None, limit: int = 2) -> list[dict[str, Any]]:
        """Every item of a list, following next_cursor to the end."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            body = self.ok("GET", path, user, params=params)
            items += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                return items
