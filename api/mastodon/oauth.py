"""OAuth for Mastodon clients, without storage of its own.

Everything OAuth hands out is signed with the server's secret (the key of api.auth,
derived for this purpose), so any API process checks it and nothing is stored:

* client_id: the app's registration itself (name, redirect URIs, scopes), signed;
  client_secret: an HMAC of the client_id. Registering an app appends no event.
* authorization code: (client, account, session generation, redirect URI, scopes,
  expiry), signed, valid CODE_TTL seconds. Codes are short-lived rather than single-use
  (single use would need a stored record; the code is useless without the app's secret).
* access token: a photostream session token (api.auth.TokenSigner), so the existing
  authentication applies unchanged, and revoking it is photostream's sign-out
  everywhere (SessionsRevoked), which ends every token of the account.
* app token (client_credentials): signed (client, expiry); it names no account and
  only lets an app register accounts and read what anonymous readers may.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import orjson

from api.auth import b64url, unb64url
from api.http import HttpError
from api.wiring import Backend

CLIENT_PREFIX = "psc1"
APP_TOKEN_PREFIX = "psapp1"
CODE_PREFIX = "pscode1"
CODE_TTL = 600
APP_TOKEN_TTL = 86400
OOB = "urn:ietf:wg:oauth:2.0:oob"
KNOWN_SCOPES = {"read", "write", "follow", "push", "profile"}
CLIENT_NAME_MAX = 100
REDIRECT_URIS_MAX = 1000


def _key(backend: Backend) -> bytes:
    # Derived from the token key so that nothing OAuth signs is ever a valid session token.
    return hmac.new(backend.signer.secret, b"photostream mastodon oauth v1", hashlib.sha256).digest()


def _sign(backend: Backend, purpose: str, payload: str) -> str:
    return b64url(hmac.new(_key(backend), f"{purpose}:{payload}".encode(), hashlib.sha256).digest()[:24])


def _valid(backend: Backend, purpose: str, payload: str, signature: str) -> bool:
    return hmac.compare_digest(_sign(backend, purpose, payload), signature)


def check_scopes(raw: str | None) -> str:
    """The scopes asked for, space-separated (`read write follow` when none are)."""
    words = (raw or "read write follow").replace("+", " ").split()
    for word in words:
        if word.split(":")[0] not in KNOWN_SCOPES:
            raise HttpError(422, f"Validation failed: scope {word[:40]!r} is not one of {', '.join(sorted(KNOWN_SCOPES))}")
    return " ".join(dict.fromkeys(words)) or "read"


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    scopes: str
    website: str | None


def register_client(backend: Backend, name: str, redirect_uris: str, scopes: str, website: str | None) -> tuple[Client, str]:
    if not name.strip():
        raise HttpError(422, "Validation failed: client_name can't be blank")
    if len(name) > CLIENT_NAME_MAX:
        raise HttpError(422, f"Validation failed: client_name is too long (at most {CLIENT_NAME_MAX} characters)")
    uris = tuple(u.strip() for u in redirect_uris.replace("\r", "\n").split("\n") if u.strip())
    if not uris:
        raise HttpError(422, "Validation failed: redirect_uris can't be blank")
    if len(redirect_uris) > REDIRECT_URIS_MAX:
        raise HttpError(422, f"Validation failed: redirect_uris are too long (at most {REDIRECT_URIS_MAX} characters)")
    for uri in uris:
        if uri != OOB and not (uri.startswith(("http://", "https://")) or ":/" in uri):
            raise HttpError(422, f"Validation failed: redirect_uri {uri[:60]!r} must be an absolute URI")
    if website is not None and len(website) > 300:
        raise HttpError(422, "Validation failed: website is too long (at most 300 characters)")
    body = {"n": name, "r": list(uris), "s": scopes, "w": website, "t": int(time.time())}
    encoded = b64url(orjson.dumps(body))
    client_id = f"{CLIENT_PREFIX}.{encoded}.{_sign(backend, 'client-id', encoded)}"
    client = Client(client_id, name, uris, scopes, website)
    return client, client_secret(backend, client_id)


def client_secret(backend: Backend, client_id: str) -> str:
    return _sign(backend, "client-secret", client_id)


def load_client(backend: Backend, client_id: str | None, secret: str | None = None, *, need_secret: bool = True) -> Client:
    """The app a client_id names, 401 when it is not one we issued or the secret is wrong."""
    problem = HttpError(401, "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.", {"WWW-Authenticate": "Basic"})
    if not need_secret:  # the sign-in page: no client is authenticating, the request is malformed
        problem = HttpError(400, "The client_id is not one this server issued; register the app with POST /api/v1/apps")
    if not client_id or len(client_id) > 4000 or not client_id.startswith(CLIENT_PREFIX + "."):
        raise problem
    if need_secret and (not secret or not hmac.compare_digest(client_secret(backend, client_id), secret)):
        raise problem
    try:
        _, encoded, signature = client_id.split(".")
        if not _valid(backend, "client-id", encoded, signature):
            raise problem
        body = orjson.loads(unb64url(encoded))
        client = Client(client_id, str(body["n"]), tuple(str(u) for u in body["r"]), str(body["s"]), body.get("w"))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise problem from exc
    return client


def _digest(text: str) -> str:
    return b64url(hashlib.sha256(text.encode()).digest()[:12])


# ----- app tokens ---------------------------------------------------------------------------


def issue_app_token(backend: Backend, client: Client) -> str:
    payload = f"{_digest(client.client_id)}.{int(time.time()) + APP_TOKEN_TTL}"
    return f"{APP_TOKEN_PREFIX}.{b64url(payload.encode())}.{_sign(backend, 'app-token', payload)}"


def is_app_token(token: str) -> bool:
    return token.startswith(APP_TOKEN_PREFIX + ".")


def verify_app_token(backend: Backend, token: str) -> None:
    problem = HttpError(401, "The access token is invalid", {"WWW-Authenticate": "Bearer"})
    try:
        _, payload_part, signature = token.split(".")
        payload = unb64url(payload_part).decode("ascii")
        expires = int(payload.rsplit(".", 1)[1])
    except (ValueError, UnicodeError, IndexError) as exc:
        raise problem from exc
    if not _valid(backend, "app-token", payload, signature) or expires < time.time():
        raise problem


# ----- authorization codes -----------------------------------------------------------------


def issue_code(backend: Backend, client: Client, account_id: str, generation: int, redirect_uri: str, scopes: str) -> str:
    body = {
        "c": _digest(client.client_id),
        "a": account_id,
        "g": generation,
        "r": _digest(redirect_uri),
        "s": scopes,
        "e": int(time.time()) + CODE_TTL,
    }
    payload = b64url(orjson.dumps(body))
    return f"{CODE_PREFIX}.{payload}.{_sign(backend, 'code', payload)}"


@dataclass(frozen=True)
class Grant:
    account_id: str
    generation: int
    scopes: str


def redeem_code(backend: Backend, client: Client, code: str, redirect_uri: str) -> Grant:
    problem = HttpError(400, "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.")
    try:
        prefix, payload, signature = code.split(".")
        if prefix != CODE_PREFIX or not _valid(backend, "code", payload, signature):
            raise problem
        body: dict[str, Any] = orjson.loads(unb64url(payload))
        expired = int(body["e"]) < time.time()
        grant = Grant(str(body["a"]), int(body["g"]), str(body["s"]))
        matches = body["c"] == _digest(client.client_id) and body["r"] == _digest(redirect_uri)
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise problem from exc
    if expired or not matches:
        raise problem
    return grant
