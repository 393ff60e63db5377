"""idv.images memory bound: hostile images never push a fresh process above 256 MB peak RSS."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from idv import images

ROOT = Path(__file__).resolve().parents[2]
PEAK_RSS_LIMIT_KB = 256 * 1024

# ---------------------------------------------------------------------------------------------------
# the child: one prepare_image in a fresh interpreter, its own peak RSS (VmHWM) reported as JSON.
# VmHWM, not the parent's ru_maxrss for children: Linux carries the forking parent's peak into it.

_CHILD = r"""
import json, resource, sys
from pathlib import Path

def peak_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")

# A guard for the shared machine only (far above the limit asserted): a runaway decoder fails fast.
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import PIL.Image
from idv import errors, images

raw = Path(sys.argv[1]).read_bytes()
before = peak_kb()
try:
    result = images.prepare_image(raw, images.JUHE)
    outcome = {"outcome": "ok", "size": [result.width, result.height], "bytes": result.size}
except errors.ImageError as exc:
    outcome = {"outcome": type(exc).__name__, "code": exc.code, "cause": type(exc.__cause__).__name__}
except BaseException as exc:
    outcome = {"outcome": "untyped", "error": type(exc).__name__}
outcome.update(before_kb=before, peak_kb=peak_kb())
print(json.dumps(outcome))
"""


def run_in_child(raw: bytes) -> dict[str, Any]:
    """prepare_image(raw, JUHE) in a fresh interpreter: its outcome and peak RSS figures (KiB)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'idv'}{os.pathsep}{ROOT}"}
    with tempfile.NamedTemporaryFile(suffix=".img") as handle:
        handle.write(raw)
        handle.flush()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, handle.name],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------
# builders: small files declaring huge sizes, or genuinely large images that compress to little


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png(
    width: int,
    height: int,
    *,
    depth: int = 8,
    colour: int = 2,
    interlace: int = 0,
    extra: bytes = b"",
    palette: bytes = b"",
) -> bytes:
    """A valid PNG of one flat colour, compressed row by row (never a whole image in memory)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    compressor = zlib.compressobj(9)
    parts = []
    for x0, y0, dx, dy in passes:
        pass_width, pass_height = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if pass_width > 0 and pass_height > 0:
            row = b"\0" + b"\x40" * ((pass_width * channels * depth + 7) // 8)
            parts.extend(compressor.compress(row) for _ in range(pass_height))
    body = b"".join(parts) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + palette + extra + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def palette_png(width: int, height: int, *, transparent: bool) -> bytes:
    plte = _chunk(b"PLTE", bytes(range(256)) * 3)
    trns = _chunk(b"tRNS", b"\x80" * 256) if transparent else b""
    return png(width, height, colour=3, palette=plte + trns)


def png_text_bomb(width: int, height: int, *, chunks: int = 70) -> bytes:
    """zTXt chunks of ~1 KB that each inflate to almost 1 MB (Pillow's per-chunk cap) before IDAT."""
    text = zlib.compress(b"a" * (1024 * 1024 - 64), 9)
    ztxt = b"".join(_chunk(b"zTXt", b"Comment%d\0\0" % i + text) for i in range(chunks))
    return png(width, height, colour=0, extra=ztxt)


def apng(width: int, height: int, frames: int) -> bytes:
    images_ = [Image.new("RGB", (width, height), (i * 7 % 256, 90, 200)) for i in range(frames)]
    return encode(images_[0], "PNG", save_all=True, append_images=images_[1:])


def gif_screen(width: int, height: int, frames: int) -> bytes:
    """A GIF whose logical screen is width x height and whose frames are each one pixel."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    # Graphic control (transparency on) + a 1x1 descriptor + LZW (min code 2: clear, 0, end).
    control = b"\x21\xf9\x04\x01\x00\x00\x00\x00"
    frame = control + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * frames + b"\x3b"


def tiff(
    width: int,
    height: int,
    *,
    bits: tuple[int, ...] = (8, 8, 8),
    photometric: int = 2,
    compression: int = 8,
    rows_per_strip: int | None = None,
    same_strip: bool = False,
) -> bytes:
    """A little-endian TIFF of one flat colour, deflate (8) or uncompressed (1) strips. `same_strip`:
    every strip offset points at one shared block of data (legal to parse, cheap to ship)."""
    rps = rows_per_strip or height
    strips = (height + rps - 1) // rps
    row_bytes = (width * sum(bits) + 7) // 8
    strip_raw = b"\x40" * (row_bytes * rps)
    if compression == 8:
        compressor = zlib.compressobj(9)
        row = b"\x40" * row_bytes
        strip = b"".join(compressor.compress(row) for _ in range(rps)) + compressor.flush()
    else:
        strip = strip_raw
    data_blocks = [strip] if same_strip else [strip] * strips
    samples = len(bits)
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes

    def add(tag: int, kind: int, values: tuple[int, ...]) -> None:
        fmt = {3: "H", 4: "I"}[kind]
        entries.append((tag, kind, len(values), struct.pack("<" + fmt * len(values), *values)))

    # Layout: header, data, then the IFD and its out-of-line values.
    header_len = 8
    offsets, position = [], header_len
    for block in data_blocks:
        offsets.append(position)
        position += len(block)
    if same_strip:
        offsets = offsets * strips
    add(256, 4, (width,))
    add(257, 4, (height,))
    add(258, 3, bits)
    add(259, 3, (compression,))
    add(262, 3, (photometric,))
    add(273, 4, tuple(offsets))
    add(277, 3, (samples,))
    add(278, 4, (rps,))
    add(279, 4, (len(strip),) * strips)
    add(284, 3, (1,))
    if samples == 4 and photometric == 2:
        add(338, 3, (2,))  # unassociated alpha
    ifd_offset = position
    ifd_len = 2 + 12 * len(entries) + 4
    out_of_line = bytearray()
    ifd = bytearray(struct.pack("<H", len(entries)))
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            ifd += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, kind, count, ifd_offset + ifd_len + len(out_of_line))
            out_of_line += value
    ifd += b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", ifd_offset) + b"".join(data_blocks) + bytes(ifd) + bytes(out_of_line)


def bmp_rle8(width: int, height: int) -> bytes:
    """An RLE8 BMP: every row is runs of 255 pixels, so 40 MP fit in a few hundred KB."""
    row = bytearray()
    left = width
    while left:
        run = min(255, left)
        row += bytes((run, 7))
        left -= run
    body = (bytes(row) + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + body


def bmp_1bit(width: int, height: int) -> bytes:
    row_bytes = (width + 31) // 32 * 4
    body = b"\x55" * (row_bytes * height)
    palette = b"\0\0\0\0\xff\xff\xff\0"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 1, 0, len(body), 2835, 2835, 2, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + body


def jpeg_sof_patched(width: int, height: int, *, progressive: bool, mode: str = "RGB") -> bytes:
    """A 16x16 JPEG (4:4:4) whose frame header is patched to claim width x height."""
    colour: Any = (90, 90, 90, 0) if mode == "CMYK" else (90, 90, 90)
    data = bytearray(encode(Image.new(mode, (16, 16), colour), "JPEG", progressive=progressive, subsampling=0))
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def flat_jpeg(width: int, height: int, mode: str = "RGB", **params: Any) -> bytes:
    colour: Any = (0, 200, 200, 0) if mode == "CMYK" else (90, 120, 150)
    return encode(Image.new(mode, (width, height), colour), "JPEG", quality=50, **params)


def webp_header_patched(width: int, height: int) -> bytes:
    """A lossless 16x16 WebP whose VP8L header is patched to claim width x height."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (10, 200, 30)), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    bits = struct.unpack_from("<I", data, 21)[0]
    bits = (bits & ~0x0FFFFFFF) | ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14)
    struct.pack_into("<I", data, 21, bits)
    return bytes(data)


def webp_flat(width: int, height: int, *, lossless: bool, mode: str = "RGB") -> bytes:
    colour: Any = (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)
    params: dict[str, Any] = {"lossless": True, "method": 0} if lossless else {"quality": 10, "method": 0}
    return encode(Image.new(mode, (width, height), colour), "WEBP", **params)


def webp_animation(width: int, height: int, frames: int) -> bytes:
    seq = [Image.new("RGB", (width, height), (i * 40 % 256, 60, 90)) for i in range(frames)]
    return encode(seq[0], "WEBP", save_all=True, append_images=seq[1:], lossless=True, method=0)


def multipage_tiff(width: int, height: int, pages: int) -> bytes:
    seq = [Image.new("RGB", (width, height), (i * 30 % 256, 10, 10)) for i in range(pages)]
    return encode(seq[0], "TIFF", save_all=True, append_images=seq[1:], compression="tiff_adobe_deflate")


def mpo_with_huge_second_frame() -> bytes:
    first, second = Image.new("RGB", (1200, 900), (200, 30, 30)), Image.new("RGB", (8000, 5000), (0, 0, 200))
    return encode(first, "MPO", save_all=True, append_images=[second], quality=30)


# name -> (builder, expected outcome: "ok", "any" (ok or a typed refusal) or an error class name)
BATTERY: dict[str, tuple[Callable[[], bytes], str]] = {
    # WebP: decoded at full size only (no DCT scaling), through libwebp's animation decoder.
    "webp_lossless_16383x2441": (lambda: webp_flat(16383, 2441, lossless=True), "any"),
    "webp_lossy_16383x2441": (lambda: webp_flat(16383, 2441, lossless=False), "any"),
    "webp_rgba_8000x5000": (lambda: webp_flat(8000, 5000, lossless=True, mode="RGBA"), "any"),
    "webp_header_16383x2441": (lambda: webp_header_patched(16383, 2441), "any"),
    "webp_header_16383x16383": (lambda: webp_header_patched(16383, 16383), "ImageTooLarge"),
    "webp_animation_8x_2000x2000": (lambda: webp_animation(2000, 2000, 8), "any"),
    # PNG: zlib bombs of every depth and colour type.
    "png_rgb_8000x5000": (lambda: png(8000, 5000), "any"),
    "png_rgb_interlaced_8000x5000": (lambda: png(8000, 5000, interlace=1), "any"),
    "png_rgb16_8000x5000": (lambda: png(8000, 5000, depth=16), "any"),
    "png_rgba16_8000x5000": (lambda: png(8000, 5000, depth=16, colour=6), "any"),
    "png_grey16_8000x5000": (lambda: png(8000, 5000, depth=16, colour=0), "any"),
    "png_grey_alpha_8000x5000": (lambda: png(8000, 5000, colour=4), "any"),
    "png_1bit_8000x5000": (lambda: png(8000, 5000, depth=1, colour=0), "any"),
    "png_palette_8000x5000": (lambda: palette_png(8000, 5000, transparent=False), "any"),
    "png_palette_alpha_8000x5000": (lambda: palette_png(8000, 5000, transparent=True), "any"),
    "png_elongated_40000x1000": (lambda: png(40000, 1000), "any"),
    "png_text_bomb_small_image": (lambda: png_text_bomb(1000, 1000), "any"),
    "png_text_bomb_6000x6000": (lambda: png_text_bomb(6000, 6000, chunks=60), "any"),
    "png_header_30000x30000": (lambda: png(30000, 30000, depth=1, colour=0)[:200], "ImageTooLarge"),
    "apng_30x_1000x1000": (lambda: apng(1000, 1000, 30), "any"),
    # GIF: a huge logical screen with thousands of 1-pixel frames.
    "gif_screen_8000x5000_5000_frames": (lambda: gif_screen(8000, 5000, 5000), "any"),
    "gif_flat_8000x5000": (lambda: encode(Image.new("P", (8000, 5000), 3), "GIF"), "any"),
    # TIFF: deflate bombs, 16 bits per sample, CMYK, pages, strips sharing one block of data.
    "tiff_rgb_8000x5000": (lambda: tiff(8000, 5000), "any"),
    "tiff_rgb16_8000x5000": (lambda: tiff(8000, 5000, bits=(16, 16, 16)), "any"),
    "tiff_rgba16_8000x5000": (lambda: tiff(8000, 5000, bits=(16, 16, 16, 16)), "any"),
    "tiff_grey16_8000x5000": (lambda: tiff(8000, 5000, bits=(16,), photometric=1), "any"),
    "tiff_cmyk_8000x5000": (lambda: tiff(8000, 5000, bits=(8, 8, 8, 8), photometric=5), "any"),
    "tiff_raw_shared_strip_8000x5000": (
        lambda: tiff(8000, 5000, compression=1, rows_per_strip=50, same_strip=True),
        "any",
    ),
    "tiff_60_pages_1000x1000": (lambda: multipage_tiff(1000, 1000, 60), "any"),
    # BMP: RLE expands a few hundred KB to 40 MP; 1-bit raw packs 40 MP into 5 MB.
    "bmp_rle8_8000x5000": (lambda: bmp_rle8(8000, 5000), "any"),
    "bmp_1bit_8000x5000": (lambda: bmp_1bit(8000, 5000), "any"),
    # JPEG: DCT scaling bounds the output, but a progressive (multi-scan) file buffers every
    # coefficient at full size whatever the scale.
    "jpeg_progressive_header_8000x5000": (lambda: jpeg_sof_patched(8000, 5000, progressive=True), "any"),
    "jpeg_progressive_cmyk_header_6500x6000": (
        lambda: jpeg_sof_patched(6500, 6000, progressive=True, mode="CMYK"),
        "any",
    ),
    "jpeg_progressive_444_8000x5000": (lambda: flat_jpeg(8000, 5000, progressive=True, subsampling=0), "any"),
    "jpeg_baseline_header_8000x5000": (lambda: jpeg_sof_patched(8000, 5000, progressive=False), "any"),
    "jpeg_cmyk_8000x5000": (lambda: flat_jpeg(8000, 5000, mode="CMYK"), "any"),
    "jpeg_header_9000x5000": (lambda: jpeg_sof_patched(9000, 5000, progressive=False), "ImageTooLarge"),
    "mpo_huge_second_frame": (mpo_with_huge_second_frame, "ok"),
    # Legitimate large inputs the bound must still let through.
    "legit_webp_12mp_photo": (lambda: webp_flat(4032, 3024, lossless=False), "ok"),
    "legit_webp_rgba_10mp": (lambda: webp_flat(3600, 2700, lossless=True, mode="RGBA"), "ok"),
    "webp_rgba_12mp": (lambda: webp_flat(4032, 3024, lossless=True, mode="RGBA"), "any"),
    "legit_jpeg_progressive_12mp": (lambda: flat_jpeg(4032, 3024, progressive=True), "ok"),
    "legit_jpeg_40mp": (lambda: flat_jpeg(8000, 5000), "ok"),
    "legit_png_rgb_40mp": (lambda: png(8000, 5000), "ok"),
    "legit_png_rgba_20mp": (lambda: png(5000, 4000, colour=6), "ok"),
    "legit_tiff_rgb_24mp": (lambda: tiff(6000, 4000, rows_per_strip=16), "ok"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BATTERY))
def test_hostile_image_stays_under_peak_rss(name: str) -> None:
    build, expected = BATTERY[name]
    raw = build()
    assert len(raw) <= images.MAX_IMAGE_BYTES, f"{name}: {len(raw)} bytes, the byte limit would refuse it"
    got = run_in_child(raw)
    assert got["outcome"] != "untyped", f"{name}: {got}"
    if expected == "ok":
        assert got["outcome"] == "ok", f"{name}: {got}"
    elif expected != "any":
        assert got["outcome"] == expected, f"{name}: {got}"
    assert got["peak_kb"] <= PEAK_RSS_LIMIT_KB, f"{name}: peak RSS {got['peak_kb'] // 1024} MB, {got}"
