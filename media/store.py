"""The media store: where photo bytes live, behind one small async port.

Photos are stored before the event that refers to them is appended (ARCHITECTURE.md), so
`put` returns only once the bytes are durable and verified. Two adapters:

* FileMediaStore, "file:///abs/path": the embedded mode, a folder on the local disk.
* S3MediaStore, "s3://ACCESS:SECRET@host:port/bucket" (or "s3+https://..." for TLS):
  MinIO or any S3-compatible service, through the minio SDK.

Keys are "{media_id}/{capability}/{variant}-{sha256[:16]}.{ext}" (see media_key): the
capability is 128 random bits drawn once per upload, so a media URL cannot be guessed
from the (time-ordered) media id, even by someone holding the photo; the content hash
makes each URL immutable, so it can be cached forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import secrets
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from media.images import EncodedImage

T = TypeVar("T")

__all__ = [
    "FileMediaStore",
    "MediaIntegrityError",
    "MediaStore",
    "MediaStoreError",
    "MediaStoreUnavailable",
    "S3MediaStore",
    "S3Settings",
    "StoredObject",
    "content_type_for",
    "media_key",
    "new_capability",
    "open_media_store",
    "parse_file_url",
    "parse_s3_url",
    "validate_key",
]


class MediaStoreError(Exception):
    """The media store failed; never the uploader's fault (a server error)."""


class MediaStoreUnavailable(MediaStoreError):
    """The backing service does not answer, or refuses us (down, unreachable, bad login)."""


class MediaIntegrityError(MediaStoreError):
    """What the store holds after a put is not what we sent."""


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    content_type: str
    etag: str  # hex MD5 of data for both adapters, unquoted (S3's single-part ETag)


@runtime_checkable
class MediaStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store the bytes; durable and verified when it returns."""

    async def get(self, key: str) -> StoredObject | None:
        """The stored object, or None when there is none under that key."""

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    async def ping(self) -> None:
        """Raise MediaStoreUnavailable unless the store can be used right now."""


# --- keys -------------------------------------------------------------------------------

_MAX_KEY_LENGTH: Final = 512
# Segments may not start with a dot: that rules out "." and "..", hidden files, and the
# FileMediaStore's own temporary files (".tmp-*"), whatever the rest of the key says.
_SEGMENT: Final = r"[0-9a-z_-][0-9a-z._-]*"
_KEY_PATTERN: Final = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")

_CONTENT_TYPES: Final = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}
_UNKNOWN_TYPE: Final = "application/octet-stream"


def validate_key(key: str) -> str:
    """Return the key unchanged if it is safe as both a relative path and an S3 name."""
    if not isinstance(key, str) or not key:
        raise ValueError("media key must be a non-empty string")
    if len(key) > _MAX_KEY_LENGTH:
        raise ValueError(f"media key is {len(key)} characters; at most {_MAX_KEY_LENGTH}")
    if key.startswith("/"):
        raise ValueError(f"media key {key!r} must be relative, not start with '/'")
    if ".." in key:
        raise ValueError(f"media key {key!r} must not contain '..'")
    if not _KEY_PATTERN.fullmatch(key):
        raise ValueError(
            f"media key {key!r} may hold only 0-9 a-z . _ - and '/' between non-empty "
            "segments that do not start with '.'"
        )
    return key


def new_capability() -> str:
    """The unguessable part of one upload's keys: 128 random bits, lowercase hex."""
    return secrets.token_hex(16)


def media_key(media_id: str, image: EncodedImage, capability: str) -> str:
    """The key of one variant: "{media_id}/{capability}/{variant}-{sha256[:16]}.{ext}"."""
    return validate_key(f"{media_id}/{capability}/{image.name}-{image.sha256[:16]}.{image.ext}")


def content_type_for(key: str) -> str:
    """The content type the key's extension stands for."""
    _, dot, ext = key.rpartition(".")
    return _CONTENT_TYPES.get(ext, _UNKNOWN_TYPE) if dot else _UNKNOWN_TYPE


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# --- URLs -------------------------------------------------------------------------------

_S3_SCHEMES: Final = {"s3": False, "s3+http": False, "s3+https": True}
_S3_FORM: Final = "s3://ACCESS:SECRET@host:port/bucket"
_BUCKET_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_PATTERN: Final = re.compile(r"\d+\.\d+\.\d+\.\d+")


@dataclass(frozen=True)
class S3Settings:
    endpoint: str  # host[:port]
    access_key: str
    secret_key: str
    bucket: str
    secure: bool
    region: str | None = None

    def __repr__(self) -> str:  # never print the secret, in logs or tracebacks
        scheme = "s3+https" if self.secure else "s3"
        return f"S3Settings({scheme}://{self.access_key}:***@{self.endpoint}/{self.bucket})"


def open_media_store(url: str) -> MediaStore:
    """Build the adapter a URL names; raise ValueError saying what is wrong with it."""
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme == "file":
        return FileMediaStore(parse_file_url(url))
    if scheme in _S3_SCHEMES:
        return S3MediaStore(parse_s3_url(url))
    raise ValueError(
        f"media store URL must start with file:// or s3:// (or s3+https://), got {_redact(url)!r}"
    )


def parse_file_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        raise ValueError(f"not a file URL: {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"file media store URL must name an absolute folder as file:///abs/path "
            f"(three slashes), got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"file media store URL takes no query or fragment, got {url!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"file media store URL needs an absolute path, got {url!r}")
    if path.rstrip("/") == "":
        raise ValueError("file media store URL must name a folder, not the root '/'")
    return Path(path)


def parse_s3_url(url: str) -> S3Settings:
    shown = _redact(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _S3_SCHEMES:
        raise ValueError(f"not an s3 URL: {shown!r}; expected {_S3_FORM}")
    if parts.fragment:
        raise ValueError(f"s3 media store URL takes no fragment, got {shown!r}")
    if not parts.username or parts.password is None or not parts.password:
        raise ValueError(
            f"s3 media store URL needs an access key and a secret key, got {shown!r}; "
            f"expected {_S3_FORM} (percent-encode '/', '@' and ':' in them)"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"s3 media store URL needs a host, got {shown!r}; expected {_S3_FORM}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(
            f"s3 media store URL has an invalid port, got {shown!r}; expected a number "
            "from 1 to 65535"
        ) from None
    if port == 0:
        raise ValueError(f"s3 media store URL has port 0, got {shown!r}")
    bucket = _bucket_from_path(parts.path, shown)
    region = _region_from_query(parts.query, shown)
    host_text = f"[{host}]" if ":" in host else host  # IPv6 literal
    return S3Settings(
        endpoint=f"{host_text}:{port}" if port else host_text,
        access_key=unquote(parts.username),
        secret_key=unquote(parts.password),
        bucket=bucket,
        secure=_S3_SCHEMES[scheme],
        region=region,
    )


def _bucket_from_path(path: str, shown: str) -> str:
    bucket = path.strip("/")
    if not bucket:
        raise ValueError(f"s3 media store URL needs a bucket, got {shown!r}; expected {_S3_FORM}")
    if "/" in bucket:
        raise ValueError(
            f"s3 media store URL must name only a bucket after the host, got {shown!r}; "
            "a key prefix is not supported"
        )
    if not _BUCKET_PATTERN.fullmatch(bucket) or ".." in bucket or _IP_PATTERN.fullmatch(bucket):
        raise ValueError(
            f"s3 bucket name {bucket!r} is invalid: 3 to 63 characters of a-z 0-9 . -, "
            "starting and ending with a letter or digit, not shaped like an IP address"
        )
    return bucket


def _region_from_query(query: str, shown: str) -> str | None:
    if not query:
        return None
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(f"s3 media store URL has a malformed query, got {shown!r}") from None
    unknown = sorted(set(params) - {"region"})
    if unknown:
        raise ValueError(
            f"s3 media store URL has unknown parameter(s) {', '.join(unknown)}; only "
            "'region' is understood"
        )
    values = params["region"]
    if len(values) != 1 or not values[0]:
        raise ValueError("s3 media store URL's region parameter must have one non-empty value")
    return values[0]


def _redact(url: str) -> str:
    # Error messages end up in logs: show which URL was wrong, never the secret in it.
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


# --- the local folder -------------------------------------------------------------------


class FileMediaStore:
    """Objects as files under a root folder; content type comes from the extension."""

    def __init__(self, root: Path | str) -> None:
        root = Path(root)
        if not root.is_absolute():
            raise ValueError(f"file media store root must be absolute, got {str(root)!r}")
        self.root = root

    def __repr__(self) -> str:
        return f"FileMediaStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        expected = content_type_for(key)
        if content_type != expected:
            # Nothing but the extension records the type here: a mismatch would be served
            # as the wrong type later, so refuse it now, where the bug is.
            raise ValueError(
                f"content type {content_type!r} does not match key {key!r} (which means "
                f"{expected!r})"
            )
        await self._run(self._put_sync, path, bytes(data))

    async def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        data = await self._run(self._read_sync, path)
        if data is None:
            return None
        return StoredObject(data=data, content_type=content_type_for(key), etag=_md5_hex(data))

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        return await self._run(path.is_file)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await self._run(self._delete_sync, path)

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping_sync)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(function, *args)
        except OSError as error:  # disk full, permissions, I/O error: the store failed
            raise MediaStoreError(
                f"media folder {str(self.root)!r} failed: {error.strerror or error}"
            ) from error

    # The blocking halves, run in a worker thread.

    def _put_sync(self, path: Path, data: bytes) -> None:
        self._ensure_dir(path.parent)
        # Write aside and rename: readers see the old file or the whole new one, never a
        # partial one, and a crash leaves at most a stray temp file.
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as temp:
                # mkstemp makes the file private (0600); photos are public, and another
                # process (a web server, a backup) may need to read them.
                os.fchmod(temp.fileno(), 0o644)
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, path)
        except BaseException:
            _unlink_quietly(temp_name)
            raise
        # The rename itself is only durable once the directory entry is on disk.
        _fsync_dir(path.parent)

    def _ensure_dir(self, folder: Path) -> None:
        missing: list[Path] = []
        probe = folder
        while not probe.is_dir():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        for created in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another writer was quicker
                created.mkdir()
            # A new folder survives a crash only if its parent's entry is synced too.
            _fsync_dir(created.parent)

    @staticmethod
    def _read_sync(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    @staticmethod
    def _delete_sync(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def _ping_sync(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MediaStoreUnavailable(
                f"media folder {str(self.root)!r} cannot be created: {error.strerror}"
            ) from error
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise MediaStoreUnavailable(f"media folder {str(self.root)!r} is not writable")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


# --- S3 / MinIO -------------------------------------------------------------------------

# Fail fast: a health check or an upload must not hang for the SDK's default 5 minutes
# with 5 retries when MinIO is down.
_CONNECT_TIMEOUT_S: Final = 5.0
_READ_TIMEOUT_S: Final = 30.0
_RETRIES: Final = 2
_MISSING_OBJECT_CODES: Final = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchBucket"})
_REFUSED_CODES: Final = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)
# minio-py switches to a multipart upload above 5 MiB, whose ETag is not the MD5 of the
# content; one part of up to 5 GiB keeps the ETag checkable.
_MIN_PART_SIZE: Final = 5 * 1024 * 1024
_MAX_SINGLE_PUT: Final = 5 * 1024 * 1024 * 1024


class S3MediaStore:
    """Objects in one bucket of an S3-compatible service (MinIO), via the minio SDK."""

    def __init__(self, settings: S3Settings, *, client: Any = None) -> None:
        self.settings = settings
        self._client = client if client is not None else _make_client(settings)
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3MediaStore({self.settings!r})"

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        validate_key(key)
        data = bytes(data)
        if len(data) > _MAX_SINGLE_PUT:
            raise ValueError(f"object is {len(data)} bytes; at most {_MAX_SINGLE_PUT} supported")
        await self._ensure_bucket()
        await self._call(self._put_sync, key, data, content_type)

    async def get(self, key: str) -> StoredObject | None:
        validate_key(key)
        return await self._call(self._get_sync, key)

    async def exists(self, key: str) -> bool:
        validate_key(key)
        return await self._call(self._exists_sync, key)

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self._call(self._delete_sync, key)

    async def ping(self) -> None:
        try:
            await self._call(self._bucket_exists_sync)
        except MediaStoreUnavailable:
            raise
        except MediaStoreError as error:
            # Answering "no" (bad credentials, no permission) still means we cannot work.
            raise MediaStoreUnavailable(str(error)) from error

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        async with self._bucket_lock:  # one creation attempt, not one per concurrent put
            if not self._bucket_ready:
                await self._call(self._make_bucket_sync)
                self._bucket_ready = True

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(function, *args)
        except MediaStoreError:
            raise
        except Exception as error:
            raise _translate(error, self.settings) from error

    # The blocking halves, run in a worker thread.

    def _bucket_exists_sync(self) -> bool:
        return bool(self._client.bucket_exists(bucket_name=self.settings.bucket))

    def _make_bucket_sync(self) -> None:
        from minio.error import S3Error

        bucket = self.settings.bucket
        if self._client.bucket_exists(bucket_name=bucket):
            return
        try:
            self._client.make_bucket(bucket_name=bucket, location=self.settings.region)
        except S3Error as error:
            # Lost a race with another process creating it: that is what we wanted.
            if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def _put_sync(self, key: str, data: bytes, content_type: str) -> None:
        bucket = self.settings.bucket
        # Over http the SDK signs the payload's SHA-256 and over https it sends
        # Content-MD5, so the server refuses corrupted bodies; the stat below then checks
        # what was actually stored before the caller appends an event pointing at it.
        self._client.put_object(
            bucket_name=bucket,
            object_name=key,
            data=io.BytesIO(data),
            length=len(data),
            content_type=content_type,
            part_size=max(_MIN_PART_SIZE, len(data)),
        )
        stat = self._client.stat_object(bucket_name=bucket, object_name=key)
        expected_md5 = _md5_hex(data)
        stored_etag = (stat.etag or "").strip('"').lower()
        if stat.size != len(data):
            raise MediaIntegrityError(
                f"stored {key!r} is {stat.size} bytes, but {len(data)} were sent"
            )
        if stored_etag != expected_md5:
            raise MediaIntegrityError(
                f"stored {key!r} has ETag {stored_etag!r}, but the content's MD5 is "
                f"{expected_md5!r} (is server-side encryption changing ETags?)"
            )

    def _get_sync(self, key: str) -> StoredObject | None:
        from minio.error import S3Error

        try:
            response = self._client.get_object(bucket_name=self.settings.bucket, object_name=key)
        except S3Error as error:
            if error.code in _MISSING_OBJECT_CODES:
                return None
            raise
        try:
            data = response.read()
            headers = response.headers
            content_type = headers.get("Content-Type") or content_type_for(key)
            etag = (headers.get("ETag") or "").strip('"') or _md5_hex(data)
        finally:
            response.close()
            response.release_conn()
        return StoredObject(data=data, content_type=content_type, etag=etag)

    def _exists_sync(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self._client.stat_object(bucket_name=self.settings.bucket, object_name=key)
        except S3Error as error:
            if error.code in _MISSING_OBJECT_CODES:
                return False
            raise
        return True

    def _delete_sync(self, key: str) -> None:
        from minio.error import S3Error

        try:
            self._client.remove_object(bucket_name=self.settings.bucket, object_name=key)
        except S3Error as error:
            if error.code != "NoSuchBucket":  # nothing there to delete
                raise


def _make_client(settings: S3Settings) -> Any:
    # Imported here so the embedded mode never pays for (or needs) the S3 SDK.
    import certifi
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=_CONNECT_TIMEOUT_S, read=_READ_TIMEOUT_S),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=_RETRIES, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
        ),
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


def _translate(error: Exception, settings: S3Settings) -> MediaStoreError:
    """Map SDK and network failures onto the port's errors, without leaking the secret."""
    from minio.error import InvalidResponseError, S3Error, ServerError

    where = f"{settings.endpoint}/{settings.bucket}"
    if isinstance(error, S3Error):
        if error.code in _REFUSED_CODES:
            return MediaStoreUnavailable(
                f"media store {where} refused our credentials ({error.code})"
            )
        return MediaStoreError(f"media store {where} answered {error.code}: {error.message}")
    if isinstance(error, (ServerError, InvalidResponseError)):
        return MediaStoreUnavailable(f"media store {where} is failing: {error}")
    if _is_connection_error(error):
        return MediaStoreUnavailable(f"media store {where} does not answer: {type(error).__name__}")
    return MediaStoreError(f"media store {where} failed: {type(error).__name__}: {error}")


def _is_connection_error(error: Exception) -> bool:
    import urllib3.exceptions

    return isinstance(
        error,
        (
            urllib3.exceptions.HTTPError,  # MaxRetryError, NewConnectionError, timeouts...
            ConnectionError,
            TimeoutError,
            OSError,
        ),
    )
