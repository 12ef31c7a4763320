"""Bearer tokens: HMAC-SHA256 signed, with the account id, an expiry and the account's
session generation (signing out everywhere raises the generation; api.http refuses tokens
of an older one)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path


class InvalidToken(Exception):
    pass


def load_or_create_secret(data_dir: Path, configured: str) -> bytes:
    """PHOTOSTREAM_SECRET_KEY if set, else a key generated once into the data dir."""
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    account_id: str
    issued: int
    expires: int
    generation: int  # tokens signed before the generation was this are revoked


@dataclass(frozen=True)
class TokenSigner:
    secret: bytes
    ttl_seconds: int

    def issue(self, account_id: str, now: float | None = None, generation: int = 0) -> str:
        issued = int(now if now is not None else time.time())
        payload = f"{account_id}.{issued}.{issued + self.ttl_seconds}.{generation}".encode()
        return f"{b64url(payload)}.{b64url(self._sign(payload))}"

    def verify(self, token: str, now: float | None = None) -> str:
        """The account id in a valid, unexpired token; InvalidToken otherwise."""
        return self.claims(token, now).account_id

    def claims(self, token: str, now: float | None = None) -> TokenClaims:
        """What a valid, unexpired token says; InvalidToken otherwise. The signature is
        compared in constant time before anything in the payload is trusted."""
        if len(token) > 512:
            raise InvalidToken("malformed token")
        try:
            payload_part, signature_part = token.split(".")
            payload, signature = unb64url(payload_part), unb64url(signature_part)
        except (ValueError, UnicodeError) as exc:
            raise InvalidToken("malformed token") from exc
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidToken("bad signature")
        try:
            fields = payload.decode("ascii").split(".")
            if len(fields) == 3:  # tokens issued before generations existed: generation 0
                fields.append("0")
            account_id, issued, expires, generation = fields
            claims = TokenClaims(account_id, int(issued), int(expires), int(generation))
        except (ValueError, UnicodeError) as exc:
            raise InvalidToken("malformed token") from exc
        if claims.expires < (now if now is not None else time.time()):
            raise InvalidToken("token expired")
        return claims

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self.secret, payload, hashlib.sha256).digest()
