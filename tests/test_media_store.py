"""media.store: keys, URLs, and the local-folder adapter.

The S3 adapter is exercised here only where no server is involved (URL parsing, key
checks before any request, "does not answer" against a closed port); its behaviour
against a real MinIO belongs to the distributed-stack tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from media import store as store_module
from media.images import EncodedImage
from media.store import (
    FileMediaStore,
    MediaStore,
    MediaStoreError,
    MediaStoreUnavailable,
    S3MediaStore,
    StoredObject,
    content_type_for,
    media_key,
    new_capability,
    open_media_store,
    parse_s3_url,
    validate_key,
)

KEY = "123456789012345/thumb-0123456789abcdef.jpg"
JPEG_BYTES = b"\xff\xd8\xff pretend jpeg bytes"


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def store(tmp_path: Path) -> FileMediaStore:
    return FileMediaStore(tmp_path / "media")


# --- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [KEY, "a", "1/original-ffffffffffffffff.webp", "a/b/c_d-e.png", "x" * 512],
)
def test_valid_keys(key: str):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../secret.jpg",
        "123/../../secret.jpg",
        "123/..",
        "a..b.jpg",
        "123//thumb.jpg",
        "123/",
        "123/.hidden.jpg",
        ".tmp-abc",
        "123/./thumb.jpg",
        "123/Thumb.jpg",
        "123/thumb 1.jpg",
        "123\\thumb.jpg",
        "123/thumb.jpg?x=1",
        "123/thümb.jpg",
        "123/thumb.jpg\x00",
        "x" * 513,
    ],
)
def test_invalid_keys(key: str):
    with pytest.raises(ValueError):
        validate_key(key)


@pytest.mark.parametrize("bad_key", ["../x.jpg", "/abs.jpg", "A.jpg"])
def test_every_store_operation_checks_the_key(store: FileMediaStore, bad_key: str):
    for operation in (
        store.put(bad_key, JPEG_BYTES, "image/jpeg"),
        store.get(bad_key),
        store.exists(bad_key),
        store.delete(bad_key),
    ):
        with pytest.raises(ValueError):
            run(operation)
    assert not (store.root.parent / "x.jpg").exists()


def test_media_key_is_content_addressed_behind_an_unguessable_capability():
    image = EncodedImage(
        name="small",
        data=b"...",
        content_type="image/png",
        ext="png",
        width=320,
        height=200,
        sha256="abcdef0123456789" + "0" * 48,
    )
    capability = new_capability()
    assert media_key("987654321", image, capability) == f"987654321/{capability}/small-abcdef0123456789.png"
    assert len(capability) == 32 and int(capability, 16) >= 0 and new_capability() != capability


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("1/a.jpg", "image/jpeg"),
        ("1/a.jpeg", "image/jpeg"),
        ("1/a.png", "image/png"),
        ("1/a.webp", "image/webp"),
        ("1/a.gif", "image/gif"),
        ("1/a.bin", "application/octet-stream"),
        ("1/noext", "application/octet-stream"),
    ],
)
def test_content_type_from_extension(key: str, content_type: str):
    assert content_type_for(key) == content_type


# --- the local folder -------------------------------------------------------------------


def test_put_get_exists_delete(store: FileMediaStore):
    assert run(store.get(KEY)) is None
    assert run(store.exists(KEY)) is False

    run(store.put(KEY, JPEG_BYTES, "image/jpeg"))

    assert run(store.exists(KEY)) is True
    assert run(store.get(KEY)) == StoredObject(
        data=JPEG_BYTES,
        content_type="image/jpeg",
        etag=hashlib.md5(JPEG_BYTES).hexdigest(),
    )
    assert (store.root / KEY).read_bytes() == JPEG_BYTES

    run(store.delete(KEY))
    assert run(store.exists(KEY)) is False
    assert run(store.get(KEY)) is None
    run(store.delete(KEY))  # deleting again is fine


def test_put_overwrites_and_leaves_no_temporary_files(store: FileMediaStore):
    run(store.put(KEY, b"first", "image/jpeg"))
    run(store.put(KEY, b"second", "image/jpeg"))
    assert run(store.get(KEY)).data == b"second"
    leftovers = [p.name for p in store.root.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fds")
def test_put_fsyncs_the_file_and_the_folders(store: FileMediaStore, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", recording_fsync)
    run(store.put(KEY, JPEG_BYTES, "image/jpeg"))

    data_synced = next(i for i, path in enumerate(synced) if "/.tmp-" in path)
    media_dir = str(store.root / KEY.split("/")[0])
    # The rename's directory entry is synced after the data that was renamed...
    assert media_dir in synced[data_synced + 1 :], synced
    # ...and each folder created on the way has its entry synced in its parent.
    assert str(store.root) in synced and str(store.root.parent) in synced, synced


def test_concurrent_puts_of_one_key(store: FileMediaStore):
    async def many() -> None:
        await asyncio.gather(*(store.put(KEY, JPEG_BYTES, "image/jpeg") for _ in range(20)))

    run(many())
    assert run(store.get(KEY)).data == JPEG_BYTES


def test_content_type_must_match_the_extension(store: FileMediaStore):
    with pytest.raises(ValueError, match="does not match"):
        run(store.put(KEY, JPEG_BYTES, "image/png"))
    assert run(store.exists(KEY)) is False


def test_binary_roundtrip_of_every_byte_value(store: FileMediaStore):
    data = bytes(range(256)) * 1000
    run(store.put("1/original-00.png", data, "image/png"))
    stored = run(store.get("1/original-00.png"))
    assert stored.data == data and stored.content_type == "image/png"


def test_ping(tmp_path: Path):
    run(FileMediaStore(tmp_path / "new" / "folder").ping())
    assert (tmp_path / "new" / "folder").is_dir()

    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(MediaStoreUnavailable):
        run(FileMediaStore(blocker / "media").ping())


def test_write_failures_are_store_errors(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    broken = FileMediaStore(blocker / "media")
    with pytest.raises(MediaStoreError):
        run(broken.put(KEY, JPEG_BYTES, "image/jpeg"))


def test_the_adapters_satisfy_the_port(tmp_path: Path):
    assert isinstance(FileMediaStore(tmp_path), MediaStore)
    s3 = S3MediaStore(parse_s3_url("s3://ak:sk@127.0.0.1:9000/photos"))
    assert isinstance(s3, MediaStore)


def test_relative_root_is_refused():
    with pytest.raises(ValueError):
        FileMediaStore("relative/media")


# --- URLs -------------------------------------------------------------------------------


def test_file_url(tmp_path: Path):
    store = open_media_store(f"file://{tmp_path}/media")
    assert isinstance(store, FileMediaStore)
    assert store.root == tmp_path / "media"
    assert open_media_store("file:///srv/my%20media").root == Path("/srv/my media")
    assert open_media_store("file://localhost/srv/media").root == Path("/srv/media")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file://srv/media", "three slashes"),
        ("file:relative/media", "absolute"),
        ("file:///", "root"),
        ("file:///srv/media?x=1", "no query"),
        ("ftp://host/media", "must start with"),
        ("http://host:9000/bucket", "must start with"),
        ("/srv/media", "must start with"),
        ("", "must start with"),
    ],
)
def test_bad_file_urls(url: str, says: str):
    with pytest.raises(ValueError, match=says):
        open_media_store(url)


def test_s3_url():
    store = open_media_store("s3://minio:minio-secret@localhost:9000/photostream-media")
    assert isinstance(store, S3MediaStore)
    settings = store.settings
    assert settings.endpoint == "localhost:9000"
    assert settings.access_key == "minio"
    assert settings.secret_key == "minio-secret"
    assert settings.bucket == "photostream-media"
    assert settings.secure is False
    assert settings.region is None


def test_s3_url_variants():
    tls = parse_s3_url("s3+https://AKIA:wJal%2FrXU%40tn%3AFEMI@s3.example.com/media.bucket/")
    assert tls.secure is True
    assert tls.endpoint == "s3.example.com"
    assert tls.access_key == "AKIA"
    assert tls.secret_key == "wJal/rXU@tn:FEMI"
    assert tls.bucket == "media.bucket"

    assert parse_s3_url("s3+http://a:b@minio:9000/photos").secure is False
    assert parse_s3_url("s3://a:b@[::1]:9000/photos").endpoint == "[::1]:9000"
    assert parse_s3_url("s3://a:b@minio:9000/photos?region=eu-west-1").region == "eu-west-1"


SECRET = "Sup3rSecretValue"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("s3://minio:9000/photos", "access key and a secret key"),
        ("s3://minio@minio:9000/photos", "access key and a secret key"),
        ("s3://minio:@minio:9000/photos", "access key and a secret key"),
        (f"s3://:{SECRET}@minio:9000/photos", "access key and a secret key"),
        (f"s3://ak:{SECRET}@:9000/photos", "needs a host"),
        (f"s3://ak:{SECRET}@minio:nine/photos", "invalid port"),
        (f"s3://ak:{SECRET}@minio:70000/photos", "invalid port"),
        (f"s3://ak:{SECRET}@minio:0/photos", "port 0"),
        (f"s3://ak:{SECRET}@minio:9000", "needs a bucket"),
        (f"s3://ak:{SECRET}@minio:9000/", "needs a bucket"),
        (f"s3://ak:{SECRET}@minio:9000/photos/prefix", "only a bucket"),
        (f"s3://ak:{SECRET}@minio:9000/Photos", "invalid"),
        (f"s3://ak:{SECRET}@minio:9000/ab", "invalid"),
        (f"s3://ak:{SECRET}@minio:9000/-photos", "invalid"),
        (f"s3://ak:{SECRET}@minio:9000/my_photos", "invalid"),
        (f"s3://ak:{SECRET}@minio:9000/192.168.1.10", "invalid"),
        (f"s3://ak:{SECRET}@minio:9000/a..b", "invalid"),
        (f"s3://ak:{SECRET}@minio:9000/photos?secure=1", "unknown parameter"),
        (f"s3://ak:{SECRET}@minio:9000/photos?region=", "region"),
        (f"s3://ak:{SECRET}@minio:9000/photos?region=a&region=b", "region"),
        (f"s3://ak:{SECRET}@minio:9000/photos#frag", "no fragment"),
        (f"s3+ftp://ak:{SECRET}@minio:9000/photos", "must start with"),
    ],
)
def test_bad_s3_urls(url: str, says: str):
    with pytest.raises(ValueError, match=says) as raised:
        open_media_store(url)
    assert SECRET not in str(raised.value)


def test_the_secret_is_never_shown():
    store = open_media_store(f"s3://ak:{SECRET}@minio:9000/photos")
    assert SECRET not in repr(store)
    assert SECRET not in repr(store.settings)
    assert SECRET not in str(store.settings)


# --- S3 without a server ----------------------------------------------------------------


def test_s3_store_checks_keys_before_any_request():
    # Port 1 on loopback has no server: reaching the network would fail differently.
    s3 = open_media_store("s3://ak:sk@127.0.0.1:1/photos")
    for operation in (
        s3.put("../x.jpg", JPEG_BYTES, "image/jpeg"),
        s3.get("/abs.jpg"),
        s3.exists("a//b.jpg"),
        s3.delete("UPPER.jpg"),
    ):
        with pytest.raises(ValueError):
            run(operation)


def test_s3_store_that_does_not_answer_is_unavailable():
    s3 = open_media_store(f"s3://ak:{SECRET}@127.0.0.1:1/photos")
    with pytest.raises(MediaStoreUnavailable) as raised:
        run(s3.ping())
    assert "does not answer" in str(raised.value)
    assert SECRET not in str(raised.value)
    with pytest.raises(MediaStoreUnavailable):
        run(s3.put(KEY, JPEG_BYTES, "image/jpeg"))
    with pytest.raises(MediaStoreUnavailable):
        run(s3.get(KEY))
