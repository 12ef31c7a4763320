"""media.images: validation, orientation, metadata stripping, variants, determinism.

Every input is generated here with Pillow (or crafted byte by byte), so the tests need no
fixtures on disk and say exactly what each upload contains.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, PngImagePlugin

from media.images import (
    CorruptImage,
    EncodedImage,
    ImageTooLarge,
    MediaError,
    ProcessedImage,
    UnsupportedImage,
    process_image,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)

# --- helpers ----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(variant: EncodedImage) -> Image.Image:
    image = Image.open(io.BytesIO(variant.data))
    image.load()
    return image


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]):
    """An image whose left half is one colour and right half another."""
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the image data."""
    assert data[:2] == b"\xff\xd8"
    segments, offset = [], 2
    while offset < len(data):
        marker = data[offset + 1]
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        segments.append((marker, data[offset + 4 : offset + 2 + length]))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        offset += 2 + length
    return segments


def webp_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    chunks, offset = [], 12
    while offset + 8 <= len(data):
        fourcc = data[offset : offset + 4]
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        chunks.append(fourcc)
        offset += 8 + length + (length & 1)
    return chunks


def gif_blocks(data: bytes) -> list[str]:
    """The block sequence of a GIF: "image" per frame, "ext:XX" per extension label."""
    assert data[:6] in (b"GIF87a", b"GIF89a")
    flags = data[10]
    offset = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    blocks = []

    def skip_sub_blocks(at: int) -> int:
        while data[at]:
            at += data[at] + 1
        return at + 1

    while data[offset] != 0x3B:
        if data[offset] == 0x21:
            blocks.append(f"ext:{data[offset + 1]:02x}")
            offset = skip_sub_blocks(offset + 2)
        else:
            assert data[offset] == 0x2C, f"unexpected GIF block {data[offset]:#x}"
            blocks.append("image")
            local = data[offset + 9]
            offset += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            offset = skip_sub_blocks(offset + 1)  # after the LZW minimum code size
    return blocks


def assert_no_metadata(variant: EncodedImage) -> None:
    data = variant.data
    if variant.ext == "jpg":
        for marker, payload in jpeg_segments(data):
            if 0xE1 <= marker <= 0xEF:  # APP1..APP15: EXIF, XMP, ICC, Photoshop...
                pytest.fail(f"JPEG keeps APP{marker - 0xE0} {payload[:20]!r}")
            assert marker != 0xFE, "JPEG keeps a comment"
    elif variant.ext == "png":
        extra = set(png_chunks(data)) - {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
        assert not extra, f"PNG keeps {extra}"
    elif variant.ext == "webp":
        extra = set(webp_chunks(data)) - {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}
        assert not extra, f"WebP keeps {extra}"
    elif variant.ext == "gif":
        # Only graphic control extensions (transparency) may remain: no comment (fe),
        # application (ff: NETSCAPE loop, XMP) or plain text (01) blocks; one frame.
        blocks = gif_blocks(data)
        assert set(blocks) <= {"image", "ext:f9"}, blocks
        assert blocks.count("image") == 1, blocks
    image = decode(variant)
    assert not image.getexif(), "EXIF survived"
    for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "dpi"):
        assert key not in image.info, f"{key} survived in {variant.name}"


def assert_consistent(result: ProcessedImage) -> None:
    """Each variant's declared type, size and hash match its actual bytes."""
    import hashlib

    assert set(result.variants) == {"thumb", "small", "large", "original"}
    formats = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}
    types = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
    for name, variant in result.variants.items():
        assert variant.name == name
        image = decode(variant)
        assert image.format == formats[variant.ext]
        assert variant.content_type == types[variant.ext]
        assert image.size == (variant.width, variant.height)
        assert variant.sha256 == hashlib.sha256(variant.data).hexdigest()
        assert_no_metadata(variant)
    original = result.variants["original"]
    assert (result.width, result.height) == (original.width, original.height)
    assert result.content_type == original.content_type


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0131] = "secret-editor 1.0"  # Software
    return exif.tobytes()


# --- orientation and metadata -----------------------------------------------------------


def test_jpeg_exif_orientation_6_is_applied_and_all_exif_removed():
    # Stored landscape, red left / blue right; orientation 6 means "rotate 90° clockwise
    # to display", which puts the left (red) half on top.
    stored = halves((400, 200), RED, BLUE)
    data = encode(stored, "JPEG", quality=95, exif=exif_bytes(6))

    result = process_image(data)

    assert (result.width, result.height) == (200, 400)
    original = decode(result.variants["original"]).convert("RGB")
    assert close_to(original.getpixel((100, 50)), RED)
    assert close_to(original.getpixel((100, 350)), BLUE)
    large = decode(result.variants["large"]).convert("RGB")
    assert large.size == (200, 400)
    assert close_to(large.getpixel((100, 50)), RED)
    assert_consistent(result)
    for variant in result.variants.values():
        assert b"SpyCam" not in variant.data and b"Exif\x00\x00" not in variant.data


@pytest.mark.parametrize(
    ("orientation", "top_left_colour"),
    [(1, RED), (3, BLUE), (8, BLUE)],  # 3: rotated 180°; 8: rotated 90° counter-clockwise
)
def test_other_orientations(orientation: int, top_left_colour: tuple[int, int, int]):
    data = encode(halves((400, 200), RED, BLUE), "JPEG", quality=95, exif=exif_bytes(orientation))
    result = process_image(data)
    original = decode(result.variants["original"]).convert("RGB")
    assert close_to(original.getpixel((10, 10)), top_left_colour)


def test_jpeg_xmp_icc_and_comment_are_stripped():
    data = encode(
        Image.new("RGB", (64, 64), GREEN),
        "JPEG",
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">secret-xmp</x:xmpmeta>',
        comment=b"secret-comment",
        dpi=(300, 300),
    )
    assert b"secret-xmp" in data and b"secret-comment" in data

    result = process_image(data)

    assert_consistent(result)
    for variant in result.variants.values():
        assert b"secret" not in variant.data


def test_png_text_chunks_and_exif_are_stripped():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret-text")
    info.add_text("Author", "secret-ztxt", zip=True)
    info.add_itxt("Description", "secret-itxt", lang="en")
    data = encode(
        Image.new("RGB", (300, 200), GREEN), "PNG", pnginfo=info, exif=exif_bytes(1), dpi=(72, 72)
    )
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"pHYs"} <= set(png_chunks(data))

    result = process_image(data)

    assert_consistent(result)
    assert result.content_type == "image/png"
    assert png_chunks(result.variants["original"].data) == [b"IHDR", b"IDAT", b"IEND"]
    for variant in result.variants.values():
        assert b"secret" not in variant.data


def test_png_with_exif_orientation_is_rotated():
    data = encode(halves((400, 200), RED, BLUE), "PNG", exif=exif_bytes(6))
    result = process_image(data)
    assert (result.width, result.height) == (200, 400)
    original = decode(result.variants["original"]).convert("RGB")
    assert original.getpixel((100, 10)) == RED


# A minimal ICC v2 RGB profile whose red and blue primaries are swapped relative to sRGB:
# pixels tagged with it that read (255, 0, 0) are really blue.
def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc_profile(red, green, blue, description: str) -> bytes:
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256)) + b"\0\0"
    text = description.encode() + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(8 + 3 + 67)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(*red)),
        (b"gXYZ", xyz(*green)),
        (b"bXYZ", xyz(*blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, payload in tags:
        payload += bytes(-len(payload) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(payload))
        body += payload
    header = (
        struct.pack(">I", offset + len(body))
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


SRGB_RED = (0.4361, 0.2225, 0.0139)
SRGB_GREEN = (0.3851, 0.7169, 0.0971)
SRGB_BLUE = (0.1431, 0.0606, 0.7141)
SWAPPED_PROFILE = _icc_profile(SRGB_BLUE, SRGB_GREEN, SRGB_RED, "Swapped test RGB")


def test_icc_profile_is_converted_to_srgb_then_dropped():
    data = encode(Image.new("RGB", (200, 100), RED), "JPEG", icc_profile=SWAPPED_PROFILE)

    result = process_image(data)

    assert_consistent(result)
    for variant in result.variants.values():
        assert close_to(decode(variant).convert("RGB").getpixel((5, 5)), BLUE)


def test_icc_profile_on_rgba_png_keeps_alpha():
    data = encode(Image.new("RGBA", (200, 100), (*RED, 100)), "PNG", icc_profile=SWAPPED_PROFILE)
    result = process_image(data)
    assert_consistent(result)
    assert decode(result.variants["small"]).getpixel((5, 5)) == (*BLUE, 100)


def test_unusable_icc_profile_is_dropped_not_fatal():
    data = encode(Image.new("RGB", (64, 64), GREEN), "JPEG", icc_profile=b"not a profile" * 20)
    result = process_image(data)
    assert_consistent(result)
    assert close_to(decode(result.variants["original"]).getpixel((5, 5)), GREEN)


# --- formats and modes ------------------------------------------------------------------


def test_rgba_png_gives_png_variants_with_alpha():
    image = Image.new("RGBA", (800, 400), (*GREEN, 255))
    image.paste((0, 0, 0, 0), (0, 0, 400, 400))  # left half fully transparent
    result = process_image(encode(image, "PNG"))

    assert_consistent(result)
    assert result.content_type == "image/png"
    for variant in result.variants.values():
        assert variant.ext == "png"
        decoded = decode(variant)
        assert decoded.mode == "RGBA"
        assert decoded.getpixel((0, 0))[3] == 0
        assert decoded.getpixel((decoded.width - 1, 0)) == (*GREEN, 255)


def test_png_with_an_opaque_alpha_channel_gives_jpeg_variants():
    result = process_image(encode(Image.new("RGBA", (500, 300), (*RED, 255)), "PNG"))
    assert_consistent(result)
    assert {name: v.ext for name, v in result.variants.items()} == {
        "thumb": "jpg",
        "small": "jpg",
        "large": "jpg",
        "original": "png",
    }
    assert decode(result.variants["original"]).mode == "RGB"


def test_palette_png_with_transparency_counts_as_alpha():
    image = Image.new("P", (300, 200), 1)
    image.putpalette([0, 0, 0, *GREEN] + [0] * 762)
    image.paste(0, (0, 0, 100, 200))
    result = process_image(encode(image, "PNG", transparency=0))
    assert_consistent(result)
    assert result.variants["large"].ext == "png"
    large = decode(result.variants["large"])
    assert large.getpixel((10, 10))[3] == 0
    assert large.getpixel((250, 10)) == (*GREEN, 255)


def test_gif_keeps_first_frame_only_and_drops_comment():
    frames = [Image.new("P", (120, 80), index) for index in (1, 2)]
    palette = [0, 0, 0, *RED, *BLUE] + [0] * (768 - 9)
    for frame in frames:
        frame.putpalette(palette)
    data = encode(
        frames[0],
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=100,
        loop=0,
        comment=b"secret-gif-comment",
    )
    assert Image.open(io.BytesIO(data)).n_frames == 2

    result = process_image(data)

    assert_consistent(result)
    assert result.content_type == "image/gif"
    original = decode(result.variants["original"])
    assert getattr(original, "n_frames", 1) == 1
    assert original.convert("RGB").getpixel((5, 5)) == RED
    assert b"secret" not in result.variants["original"].data
    assert result.variants["large"].ext == "jpg"


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animated_webp_and_apng_keep_their_first_frame(fmt: str):
    frames = [Image.new("RGB", (64, 32), colour) for colour in (RED, BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2

    result = process_image(data)

    assert_consistent(result)  # also: no ANIM/ANMF/acTL/fcTL chunks survive
    original = decode(result.variants["original"])
    assert getattr(original, "n_frames", 1) == 1
    assert close_to(original.convert("RGB").getpixel((5, 5)), RED)


def test_transparent_gif_stays_transparent():
    image = Image.new("P", (100, 60), 1)
    image.putpalette([0, 0, 0, *BLUE] + [0] * 762)
    image.paste(0, (0, 0, 50, 60))
    result = process_image(encode(image, "GIF", transparency=0))
    assert_consistent(result)
    assert result.variants["small"].ext == "png"
    original = decode(result.variants["original"])
    assert original.info.get("transparency") == 0
    assert original.convert("RGBA").getpixel((5, 5))[3] == 0
    assert original.convert("RGBA").getpixel((90, 5)) == (*BLUE, 255)


def test_webp_opaque_keeps_webp_original_and_drops_exif():
    data = encode(halves((600, 300), RED, BLUE), "WEBP", quality=90, exif=exif_bytes(6))
    assert b"EXIF" in webp_chunks(data)
    result = process_image(data)
    assert_consistent(result)
    assert result.content_type == "image/webp"
    assert (result.width, result.height) == (300, 600)
    assert result.variants["large"].ext == "jpg"
    original = decode(result.variants["original"]).convert("RGB")
    assert close_to(original.getpixel((150, 20)), RED)


def test_webp_with_alpha():
    image = Image.new("RGBA", (400, 200), (*GREEN, 255))
    image.paste((0, 0, 0, 0), (0, 0, 200, 200))
    result = process_image(encode(image, "WEBP", lossless=True))
    assert_consistent(result)
    assert result.variants["original"].ext == "webp"
    assert decode(result.variants["original"]).mode == "RGBA"
    assert result.variants["thumb"].ext == "png"


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (300, 200), (0, 255, 255, 0)), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    result = process_image(data)
    assert_consistent(result)
    for variant in result.variants.values():
        decoded = decode(variant)
        assert decoded.mode == "RGB"
        assert close_to(decoded.getpixel((5, 5)), RED)


def test_greyscale_jpeg_and_one_bit_png():
    for data in (
        encode(Image.new("L", (100, 50), 128), "JPEG"),
        encode(Image.new("1", (100, 50), 1), "PNG"),
    ):
        result = process_image(data)
        assert_consistent(result)
        assert decode(result.variants["original"]).mode == "RGB"


def test_sixteen_bit_grey_png_is_scaled_not_clipped():
    result = process_image(encode(Image.new("I;16", (100, 50), 32768), "PNG"))
    assert_consistent(result)
    value = decode(result.variants["original"]).getpixel((5, 5))
    assert close_to(value, (128, 128, 128), tolerance=2)


# --- variant sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((4000, 3000), {"thumb": (150, 150), "small": (320, 240), "large": (1080, 810)}),
        ((3000, 4000), {"thumb": (150, 150), "small": (320, 427), "large": (1080, 1440)}),
        ((1080, 1080), {"thumb": (150, 150), "small": (320, 320), "large": (1080, 1080)}),
        # narrower than the targets: never upscaled
        ((500, 250), {"thumb": (150, 150), "small": (320, 160), "large": (500, 250)}),
        ((200, 100), {"thumb": (100, 100), "small": (200, 100), "large": (200, 100)}),
        ((1, 1), {"thumb": (1, 1), "small": (1, 1), "large": (1, 1)}),
        # a panorama: thumb comes from the full image, not from a too-thin large
        ((6000, 200), {"thumb": (150, 150), "small": (320, 11), "large": (1080, 36)}),
    ],
)
def test_variant_sizes(size: tuple[int, int], expected: dict[str, tuple[int, int]]):
    result = process_image(encode(Image.new("RGB", size, GREEN), "JPEG"))
    actual = {name: (v.width, v.height) for name, v in result.variants.items()}
    assert actual == {**expected, "original": size}
    for name, variant in result.variants.items():
        assert decode(variant).size == actual[name]


def test_thumb_is_a_centre_crop():
    image = Image.new("RGB", (900, 300), RED)
    image.paste(GREEN, (300, 0, 600, 300))  # the middle square is green
    result = process_image(encode(image, "PNG"))
    thumb = decode(result.variants["thumb"]).convert("RGB")
    assert thumb.size == (150, 150)
    for point in ((2, 2), (147, 2), (75, 75), (2, 147), (147, 147)):
        assert close_to(thumb.getpixel(point), GREEN, tolerance=40), point


def test_absurdly_tall_image_still_encodes_as_jpeg():
    # 100 x 70,000 is only 7 megapixels, but JPEG cannot be taller than 65,500 px.
    result = process_image(encode(Image.new("L", (100, 70_000), 200), "PNG"))
    assert result.variants["large"].height <= 65_500
    assert (result.width, result.height) == (100, 70_000)


# --- determinism ------------------------------------------------------------------------


def _photo_like(size: tuple[int, int]) -> Image.Image:
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise((size[0] // 4, size[1] // 4), 40).resize(size)
    mirrored = gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return Image.merge("RGB", (gradient, noise, mirrored))


@pytest.mark.parametrize(
    "make",
    [
        lambda: encode(_photo_like((1500, 1000)), "JPEG", exif=exif_bytes(6)),
        lambda: encode(_photo_like((1500, 1000)).convert("RGBA"), "PNG"),
        lambda: encode(_photo_like((700, 500)), "WEBP"),
        lambda: encode(_photo_like((400, 300)).convert("P"), "GIF"),
    ],
    ids=["jpeg", "png", "webp", "gif"],
)
def test_same_input_gives_same_bytes(make: Callable[[], bytes]):
    data = make()
    first, second = process_image(data), process_image(data)
    assert first == second
    assert_consistent(first)


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"Dear diary, this is not a photo even though it is called me.jpg\n", "text file"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "SVG"),
        (encode(Image.new("RGB", (8, 8)), "TIFF"), "TIFF"),
        (encode(Image.new("RGB", (8, 8)), "BMP"), "BMP"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (bytes(range(256)) * 4, "not an image we recognise"),
    ],
    ids=["empty", "text", "svg", "svg-script", "tiff", "bmp", "pdf", "heic", "binary"],
)
def test_unsupported_files(data: bytes, says: str):
    with pytest.raises(UnsupportedImage) as raised:
        process_image(data)
    assert says in str(raised.value)
    assert "JPEG, PNG, WebP or GIF" in str(raised.value)


def test_truncated_jpeg_is_corrupt():
    data = encode(_photo_like((640, 480)), "JPEG")
    for cut in (len(data) // 2, len(data) - 1, 200):
        with pytest.raises(CorruptImage) as raised:
            process_image(data[:cut])
        assert "JPEG" in str(raised.value)


def test_truncated_jpeg_is_corrupt_even_if_lenient_loading_was_on(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(_photo_like((640, 480)), "JPEG")
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        process_image(data[: len(data) // 2])


def test_corrupt_and_truncated_png():
    data = encode(_photo_like((300, 200)), "PNG")
    idat = data.index(b"IDAT")
    flipped = bytearray(data)
    flipped[idat + 40] ^= 0xFF
    for broken in (bytes(flipped), data[: len(data) // 2], data[:40]):
        with pytest.raises(CorruptImage) as raised:
            process_image(broken)
        assert "PNG" in str(raised.value)


def test_gif_and_webp_with_valid_signature_but_garbage_body():
    for data in (b"GIF89a" + b"\x00" * 40, b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\x00" * 40):
        with pytest.raises(CorruptImage):
            process_image(data)


def test_bytes_over_the_limit():
    data = encode(Image.new("RGB", (64, 64), GREEN), "JPEG")
    with pytest.raises(ImageTooLarge):
        process_image(data, max_bytes=len(data) - 1)
    assert process_image(data, max_bytes=len(data)).width == 64


def test_size_message_names_both_sizes():
    too_big = b"\xff\xd8\xff" + bytes(int(17.2 * 1024 * 1024) - 3)
    with pytest.raises(ImageTooLarge) as raised:
        process_image(too_big)
    assert str(raised.value) == "the file is 17.2 MB; photos may be at most 15 MB"


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _real_png_bomb(side: int) -> bytes:
    """A genuine, complete 1-bit PNG of sidexside black pixels: tiny file, huge image."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + math.ceil(side / 8))  # filter byte + packed bits
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    return _png_bytes(side, side, 1, 0, b"".join(parts))


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, fail the test if any pixel data is decoded: the guard must act on
    the header alone."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image.Image, "load", refuse)


def test_decompression_bomb_png_is_refused_from_its_header(monkeypatch):
    bomb = _real_png_bomb(20_000)
    assert len(bomb) < 200_000  # 400 megapixels in a few dozen kilobytes
    forbid_decoding(monkeypatch)

    with pytest.raises(ImageTooLarge) as raised:
        process_image(bomb)
    assert "megapixels" in str(raised.value)


def test_patched_ihdr_claiming_20000_square_is_refused(monkeypatch):
    small = encode(Image.new("RGB", (16, 16), GREEN), "PNG")
    ihdr = small.index(b"IHDR")
    patched = bytearray(small)
    patched[ihdr + 4 : ihdr + 12] = struct.pack(">II", 20_000, 20_000)
    crc = zlib.crc32(bytes(patched[ihdr : ihdr + 17])) & 0xFFFFFFFF
    patched[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    forbid_decoding(monkeypatch)

    with pytest.raises(ImageTooLarge) as raised:
        process_image(bytes(patched))
    assert "20000x20000" in str(raised.value) or "too many pixels" in str(raised.value)


def test_over_our_limit_but_under_pillows_is_refused_by_us(monkeypatch):
    # 8,000 x 7,000 = 56 MP: over our 50 MP, under Pillow's own ~89 MP warning threshold.
    png = _png_bytes(8_000, 7_000, 8, 2, zlib.compress(b""))
    forbid_decoding(monkeypatch)
    with pytest.raises(ImageTooLarge) as raised:
        process_image(png)
    assert str(raised.value) == (
        "the image is 8000x7000 pixels (56 megapixels); photos may be at most 50 megapixels"
    )


def test_jpeg_and_gif_headers_claiming_huge_sizes(monkeypatch):
    jpeg = bytearray(encode(Image.new("RGB", (16, 16), GREEN), "JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)  # height, width
    gif = bytearray(encode(Image.new("P", (16, 16)), "GIF"))
    gif[6:10] = struct.pack("<HH", 65_535, 65_535)
    forbid_decoding(monkeypatch)
    for data in (bytes(jpeg), bytes(gif)):
        with pytest.raises(ImageTooLarge):
            process_image(data)


def test_max_pixels_is_configurable():
    data = encode(Image.new("RGB", (200, 100), GREEN), "PNG")
    with pytest.raises(ImageTooLarge):
        process_image(data, max_pixels=19_999)
    assert process_image(data, max_pixels=20_000).width == 200


def test_pillows_bomb_limit_is_honoured_too(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    data = encode(Image.new("RGB", (200, 100), GREEN), "PNG")
    with pytest.raises(ImageTooLarge):
        process_image(data)


def test_every_refusal_is_a_media_error():
    for error in (ImageTooLarge, UnsupportedImage, CorruptImage):
        assert issubclass(error, MediaError)


# --- property: nothing but MediaError escapes -------------------------------------------

_SIGNATURES = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF87a",
    b"GIF89a",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"RIFF\x00\x01\x00\x00WEBPVP8L",
    b"RIFF\x00\x01\x00\x00WEBPVP8X",
]


def _seeds() -> list[bytes]:
    base = _photo_like((48, 32))
    alpha = base.convert("RGBA")
    alpha.putalpha(128)
    return [
        encode(base, "JPEG", exif=exif_bytes(6)),
        encode(base, "JPEG", progressive=True),
        encode(base, "PNG"),
        encode(alpha, "PNG"),
        encode(base.convert("P"), "PNG", transparency=3),
        encode(base.convert("P"), "GIF", comment=b"c"),
        encode(base, "WEBP"),
        encode(alpha, "WEBP", lossless=True),
    ]


SEEDS = _seeds()
# Small limits keep a mutated header from making each example allocate hundreds of MB;
# the code paths are the same as with the defaults.
LIMITS = {"max_bytes": 1_000_000, "max_pixels": 2_000_000}
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _only_media_errors(data: bytes) -> None:
    try:
        result = process_image(data, **LIMITS)
    except MediaError:
        return
    assert_consistent(result)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_media_errors(data: bytes):
    _only_media_errors(data)


@PROPERTY_SETTINGS
@given(st.sampled_from(_SIGNATURES), st.binary(max_size=2048))
def test_bytes_behind_a_valid_signature_raise_only_media_errors(signature: bytes, tail: bytes):
    _only_media_errors(signature + tail)


@PROPERTY_SETTINGS
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_damaged_real_images_raise_only_media_errors(
    seed: bytes, flips: list[tuple[int, int]], cut: int | None
):
    data = bytearray(seed)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _only_media_errors(bytes(data))
