"""Photo validation and re-encoding: bytes in, metadata-free variants out.

Pure: no I/O besides in-memory buffers, so the command side can call it before it stores
anything and tests can check every rule on images they generate.

Format decisions (API.md, "Media"):

* The type is sniffed from the magic numbers; the client's name and content type are never
  trusted. Only JPEG, PNG, WebP and GIF are accepted.
* Every output is re-encoded from pixels, so nothing of the upload's metadata (EXIF, XMP,
  ICC, PNG text chunks, GIF comments and extensions) survives. EXIF orientation is applied
  to the pixels first; an embedded ICC profile is converted to sRGB (or dropped when it is
  unusable), because outputs carry no profile and browsers then assume sRGB.
* thumb / small / large are JPEG when the image is opaque and PNG when it has real alpha
  (an alpha channel that is not fully opaque everywhere).
* original keeps the upload's format family at full size: JPEG -> JPEG, PNG -> PNG,
  WebP -> WebP (lossy), GIF -> GIF holding the first frame only (animations are not kept,
  by any variant).
* Nothing is upscaled: small and large keep the width of a narrower image, and thumb is
  a centre square of min(150, shorter side) px.

Speed: the original needs the full decode anyway, so large is resampled from it and small
and thumb from large (~10 ms). Image.draft is therefore not used: a second, DCT-scaled
decode of a 12 MP JPEG still costs ~50 ms, most of a full decode.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageCms, ImageFile, ImageOps

__all__ = [
    "CorruptImage",
    "EncodedImage",
    "ImageTooLarge",
    "MediaError",
    "ProcessedImage",
    "UnsupportedImage",
    "process_image",
]

MAX_BYTES: Final = 15 * 1024 * 1024
MAX_PIXELS: Final = 50_000_000

THUMB_SIDE: Final = 150
SMALL_WIDTH: Final = 320
LARGE_WIDTH: Final = 1080
JPEG_QUALITY: Final = 85
WEBP_QUALITY: Final = 85
# zlib effort. PNG's cost grows with pixel count and noise: level 6 takes ~3 s of CPU on a
# 12 MP photographic PNG, level 3 about 1 s for ~10% more bytes, so the rarely served
# original gets 3 and the small, often served variants get 6. Pillow's optimize=True
# (level 9 plus a filter search) costs ten times more again for ~4%: never.
PNG_ORIGINAL_LEVEL: Final = 3
PNG_VARIANT_LEVEL: Final = 6
# libjpeg cannot write a side longer than this; only absurd aspect ratios (a 320 px wide
# strip 65,000 px tall) get near it, and for those a variant is scaled below its width.
_JPEG_MAX_SIDE: Final = 65_500
# Pillow's own rule of thumb (Image.thumbnail): box-reduce by an integer factor first, then
# resample at least this much; visually the same as a full resample, much faster for big
# factors (a thumb from a full image). Lower values would also cut the 12 MP -> 1080 px
# resample (~120 ms) but measurably soften it.
_REDUCING_GAP: Final = 2.0

_ALLOWED: Final = "JPEG, PNG, WebP or GIF"


# --- errors -----------------------------------------------------------------------------


class MediaError(Exception):
    """The upload is not an acceptable photo; str(error) says why, for the uploader."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageTooLarge(MediaError):
    """Too many bytes or too many pixels."""


class UnsupportedImage(MediaError):
    """Not a JPEG, PNG, WebP or GIF image (sniffed from the bytes)."""


class CorruptImage(MediaError):
    """Has the signature of an allowed format but cannot be decoded (truncated, damaged)."""


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedImage:
    name: str  # the variant: thumb, small, large or original
    data: bytes
    content_type: str
    ext: str  # without the dot
    width: int
    height: int
    sha256: str  # hex digest of data


@dataclass(frozen=True)
class ProcessedImage:
    content_type: str  # of the original after re-encoding
    width: int  # of the original, after EXIF orientation
    height: int
    variants: dict[str, EncodedImage]  # keys: thumb, small, large, original


# --- format detection -------------------------------------------------------------------


@dataclass(frozen=True)
class _Format:
    pil_name: str  # Pillow's format name, to stop Pillow from trying any other plugin
    label: str  # for messages
    content_type: str
    ext: str


_JPEG: Final = _Format("JPEG", "JPEG", "image/jpeg", "jpg")
_PNG: Final = _Format("PNG", "PNG", "image/png", "png")
_WEBP: Final = _Format("WEBP", "WebP", "image/webp", "webp")
_GIF: Final = _Format("GIF", "GIF", "image/gif", "gif")

# Formats we refuse but can name, so the uploader learns what they actually sent.
_KNOWN_OTHERS: Final[tuple[tuple[bytes, int, str], ...]] = (
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"BM", 0, "a BMP image"),
    (b"%PDF", 0, "a PDF document"),
    (b"\x00\x00\x01\x00", 0, "an ICO icon"),
    (b"8BPS", 0, "a Photoshop document"),
    (b"ftypheic", 4, "a HEIC image"),
    (b"ftypheix", 4, "a HEIC image"),
    (b"ftypmif1", 4, "a HEIF image"),
    (b"ftypavif", 4, "an AVIF image"),
    (b"\xff\x0a", 0, "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", 0, "a JPEG XL image"),
)


def _sniff(data: bytes) -> _Format:
    if data.startswith(b"\xff\xd8\xff"):
        return _JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _PNG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _WEBP
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _GIF
    raise UnsupportedImage(_unsupported_message(data))


def _unsupported_message(data: bytes) -> str:
    if not data:
        return f"the file is empty; photos must be {_ALLOWED} images"
    what = "not an image we recognise"
    for magic, offset, name in _KNOWN_OTHERS:
        if data[offset : offset + len(magic)] == magic:
            what = name
            break
    else:
        head = data[:512].lstrip().lower()
        if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head:
            what = "an SVG drawing"
        elif _looks_like_text(data[:512]):
            what = "a text file"
    return f"the file is {what}; photos must be {_ALLOWED} images"


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(byte >= 0x20 or byte in b"\t\n\r\f" for byte in head)


# --- limits -----------------------------------------------------------------------------


def _format_mb(size: int, *, round_up: bool = False) -> str:
    return _format_amount(size / (1024 * 1024), "MB", round_up=round_up)


def _format_megapixels(pixels: int, *, round_up: bool = False) -> str:
    return _format_amount(pixels / 1_000_000, "megapixels", round_up=round_up)


def _format_amount(amount: float, unit: str, *, round_up: bool) -> str:
    # What the upload measured is rounded up, so "15.0 MB; at most 15 MB" never happens.
    tenths = math.ceil(amount * 10) if round_up else round(amount * 10)
    if tenths % 10 == 0:
        return f"{tenths // 10} {unit}"
    return f"{tenths / 10:.1f} {unit}"


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"the file is {_format_mb(len(data), round_up=True)}; "
            f"photos may be at most {_format_mb(max_bytes)}"
        )


def _pixel_limit(max_pixels: int) -> int:
    # Pillow's own bomb guard must never be the one that fires (its warning is only a
    # warning): keep our limit at or under it so every bomb is refused by our check.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return max_pixels if pillow_limit is None else min(max_pixels, int(pillow_limit))


def _check_pixels(size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the image claims to be {width}x{height} pixels, which is no picture")
    if width * height > limit:
        raise ImageTooLarge(
            f"the image is {width}x{height} pixels "
            f"({_format_megapixels(width * height, round_up=True)}); "
            f"photos may be at most {_format_megapixels(limit)}"
        )


def _too_large_for_pillow(limit: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"the image has too many pixels to be decoded safely; photos may be at most "
        f"{_format_megapixels(limit)}"
    )


def _corrupt(fmt: _Format) -> CorruptImage:
    return CorruptImage(
        f"the file looks like a {fmt.label} image but could not be decoded: it is damaged or "
        f"incomplete; upload the complete file ({_ALLOWED})"
    )


def _require_strict_decoding() -> None:
    # LOAD_TRUNCATED_IMAGES is process-wide; if anything switched it on, a cut-off upload
    # would be stored with grey bands instead of being refused. Fail loudly: that is a
    # programming error, not a bad upload.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; media refuses "
            "to accept truncated photos, switch it back off"
        )


# --- decoding ---------------------------------------------------------------------------


@contextmanager
def _pillow_warnings_policy() -> Iterator[None]:
    """Bomb warnings become errors; Pillow's notes about malformed metadata are dropped
    (the metadata is discarded anyway, so they would only be log noise)."""
    # catch_warnings is not thread-safe (it swaps the global filter list), but a race can
    # only leave these filters installed or lose them; _pixel_limit keeps our own check
    # in front of Pillow's, so a lost filter cannot let a bomb through.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _open(data: bytes, fmt: _Format, limit: int) -> ImageFile.ImageFile:
    """Parse the header only: the pixel count is known before any pixel is allocated."""
    try:
        with _pillow_warnings_policy():
            image = Image.open(io.BytesIO(data), formats=[fmt.pil_name])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large_for_pillow(limit) from None
    except MemoryError:
        raise
    except Exception as error:  # Pillow raises many types for a malformed header
        raise _corrupt(fmt) from error
    _check_pixels(image.size, limit)
    return image


def _verify_png(data: bytes, fmt: _Format) -> None:
    # Decoding does not check chunk CRCs; verify() does, and is cheap next to decoding.
    try:
        with _pillow_warnings_policy(), Image.open(io.BytesIO(data), formats=[fmt.pil_name]) as im:
            im.verify()
    except MemoryError:
        raise
    except Exception as error:
        raise _corrupt(fmt) from error


def _decode(image: ImageFile.ImageFile, fmt: _Format, limit: int) -> None:
    """Force the full decode, so truncation and corruption surface here and not later."""
    try:
        with _pillow_warnings_policy():
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large_for_pillow(limit) from None
    except MemoryError:
        raise
    except Exception as error:
        raise _corrupt(fmt) from error
    # A GIF frame may extend its canvas past the header's screen size.
    _check_pixels(image.size, limit)


def _apply_orientation(image: Image.Image) -> None:
    # A photo with unreadable EXIF still has good pixels; refusing it would only punish
    # the camera. Pillow transposes before it rewrites the EXIF, so a failure leaves the
    # pixels either untouched or correctly oriented, never half-done.
    try:
        with _pillow_warnings_policy():
            ImageOps.exif_transpose(image, in_place=True)
    except MemoryError:
        raise
    except Exception:
        pass


# --- colour and mode normalisation ------------------------------------------------------

_SRGB_PROFILE: Final = ImageCms.createProfile("sRGB")
_ALPHA_MODES: Final = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_SIXTEEN_BIT_GREY: Final = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ICC_SPACE: Final = {"RGB": "RGB ", "RGBA": "RGB ", "CMYK": "CMYK"}


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert pixels described by an embedded ICC profile to sRGB, or drop the profile."""
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space != _ICC_SPACE[image.mode]:
            return image  # e.g. a grey profile on pixels Pillow already made RGB
        if "srgb" in ImageCms.getProfileDescription(profile).lower():
            return image
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        # A fresh transform per image: lcms transforms keep a pixel cache that must not be
        # shared between threads, and building one costs about a millisecond.
        transform = ImageCms.buildTransform(profile, _SRGB_PROFILE, image.mode, out_mode)
        converted = ImageCms.applyTransform(image, transform)
    except MemoryError:
        raise
    except Exception:
        # Broken or exotic profile (or one that does not match the pixels' colour space):
        # showing the pixels as sRGB is what a browser would do with it too.
        return image
    assert converted is not None
    return converted


def _sixteen_bit_grey_to_l(image: Image.Image) -> Image.Image:
    # convert("L") clips 16-bit values instead of scaling them: a 16-bit PNG would turn
    # almost white. Scale only when values really use the 16-bit range.
    # A 16-bit tRNS colour is dropped: it cannot be carried through the scaling, and grey
    # 16-bit PNGs with a transparent colour are vanishingly rare.
    wide = image.convert("I")
    _, high = wide.getextrema()
    if isinstance(high, (int, float)) and high > 255:
        wide = wide.point(lambda value: value * (1 / 256))
    return _stripped(wide.convert("L"))


def _has_real_alpha(image: Image.Image) -> bool:
    low, _ = image.getchannel("A").getextrema()
    return isinstance(low, (int, float)) and low < 255


def _normalise(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when some pixel is not fully opaque; sRGB; no metadata attached."""
    icc = image.info.get("icc_profile")
    if image.mode == "CMYK":
        # CMYK has no alpha, and its profile is what turns it into RGB at all.
        converted = _to_srgb(image, icc)
        return _stripped(converted if converted.mode == "RGB" else image.convert("RGB"))
    if image.mode in _SIXTEEN_BIT_GREY:
        image = _sixteen_bit_grey_to_l(image)
    transparent = image.mode in _ALPHA_MODES or "transparency" in image.info
    working = image.convert("RGBA" if transparent else "RGB")
    if working.mode == "RGBA" and not _has_real_alpha(working):
        working = working.convert("RGB")
    return _stripped(_to_srgb(working, icc))


def _stripped(image: Image.Image) -> Image.Image:
    # convert() and copy() carry .info along, and PNG and GIF writers read icc_profile,
    # transparency, comments and the like from it: clear it so only pixels are written.
    image.info = {}
    return image


# --- resizing ---------------------------------------------------------------------------


def _fit_width(image: Image.Image, width: int) -> Image.Image:
    """Scale down to `width` (never up), keeping the aspect ratio."""
    scale = min(1.0, width / image.width, _JPEG_MAX_SIDE / image.height)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return _stripped(image.resize(size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP))


def _square_thumb(image: Image.Image, side: int) -> Image.Image:
    """Centre square crop, scaled down to `side` (smaller images keep their short side)."""
    crop = min(image.width, image.height)
    left = (image.width - crop) // 2
    top = (image.height - crop) // 2
    out = min(side, crop)
    return _stripped(
        image.resize(
            (out, out),
            Image.Resampling.LANCZOS,
            box=(left, top, left + crop, top + crop),
            reducing_gap=_REDUCING_GAP,
        )
    )


# --- encoding ---------------------------------------------------------------------------


def _encoded(name: str, fmt: _Format, image: Image.Image, data: bytes) -> EncodedImage:
    return EncodedImage(
        name=name,
        data=data,
        content_type=fmt.content_type,
        ext=fmt.ext,
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _save(image: Image.Image, pil_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def _encode_jpeg(name: str, image: Image.Image) -> EncodedImage:
    data = _save(
        image if image.mode == "RGB" else image.convert("RGB"),
        "JPEG",
        quality=JPEG_QUALITY,
        optimize=True,
        progressive=True,
        subsampling="4:2:0",  # explicit: the default depends on quality
    )
    return _encoded(name, _JPEG, image, data)


def _encode_png(name: str, image: Image.Image, *, compress_level: int) -> EncodedImage:
    return _encoded(name, _PNG, image, _save(image, "PNG", compress_level=compress_level))


def _encode_variant(name: str, image: Image.Image) -> EncodedImage:
    if image.mode == "RGBA":
        return _encode_png(name, image, compress_level=PNG_VARIANT_LEVEL)
    return _encode_jpeg(name, image)


def _encode_original(
    fmt: _Format, image: Image.Image, gif_frame: Image.Image | None
) -> EncodedImage:
    if fmt is _JPEG:
        return _encode_jpeg("original", image)
    if fmt is _PNG:
        return _encode_png("original", image, compress_level=PNG_ORIGINAL_LEVEL)
    if fmt is _WEBP:
        data = _save(image, "WEBP", quality=WEBP_QUALITY, method=4)
        return _encoded("original", _WEBP, image, data)
    return _encode_gif(image, gif_frame)


def _encode_gif(image: Image.Image, frame: Image.Image | None) -> EncodedImage:
    if frame is not None and frame.mode in ("P", "L") and frame.size == image.size:
        # Re-save the first frame's own palette indices: lossless, whereas quantising
        # the RGB(A) working copy again would change colours.
        transparency = frame.info.get("transparency")
        clean = _stripped(frame)
        options: dict[str, object] = {"optimize": False}
        if isinstance(transparency, int):
            options["transparency"] = transparency
        return _encoded("original", _GIF, clean, _save(clean, "GIF", **options))
    # First frame decoded as RGB(A) (a process-wide Pillow GIF setting): let Pillow quantise.
    return _encoded("original", _GIF, image, _save(image, "GIF", optimize=False))


# --- the pipeline -----------------------------------------------------------------------


def process_image(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS
) -> ProcessedImage:
    """Validate an upload and produce its metadata-free variants.

    Raises ImageTooLarge, UnsupportedImage or CorruptImage (all MediaError) for bad
    uploads, with a message meant for the uploader. Deterministic: the same bytes give the
    same output bytes (for a given Pillow build). CPU-bound and thread-safe: call it via
    asyncio.to_thread from async code; Pillow releases the GIL while it codes.
    """
    if max_bytes <= 0 or max_pixels <= 0:
        raise ValueError("max_bytes and max_pixels must be positive")
    _require_strict_decoding()
    _check_bytes(data, max_bytes)
    fmt = _sniff(data)
    limit = _pixel_limit(max_pixels)

    with _open(data, fmt, limit) as decoded:
        if fmt is _PNG:
            _verify_png(data, fmt)  # only now: verify() reads the header's size unchecked
        _decode(decoded, fmt, limit)
        _apply_orientation(decoded)
        # Only the GIF original needs the palette frame; everything else works on RGB(A).
        gif_frame = decoded.copy() if fmt is _GIF else None
        try:
            full = _normalise(decoded)
        except MemoryError:
            raise
        except Exception as error:  # a mode Pillow decodes but cannot convert
            raise _corrupt(fmt) from error

    # Each variant is derived from the next larger one: resampling 1 MP instead of 12 MP,
    # with no visible difference, since large is still >3x the size of small.
    large = _fit_width(full, LARGE_WIDTH)
    small = _fit_width(large, SMALL_WIDTH)
    thumb_source = large if min(large.size) >= 2 * THUMB_SIDE else full
    thumb = _square_thumb(thumb_source, THUMB_SIDE)

    original = _encode_original(fmt, full, gif_frame)
    variants = {
        "thumb": _encode_variant("thumb", thumb),
        "small": _encode_variant("small", small),
        "large": _encode_variant("large", large),
        "original": original,
    }
    return ProcessedImage(
        content_type=original.content_type,
        width=full.width,
        height=full.height,
        variants=variants,
    )
