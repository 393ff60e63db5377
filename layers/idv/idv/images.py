"""Images in, provider-ready JPEG out: base64 decoding, checks, orientation, size targets.

Importing this module does not import Pillow: it loads on the first image actually prepared, so
functions that never see an image keep their cold start small.

`prepare_image(raw, target)`:
1. accepts JPEG (incl. MPO from phones), PNG, BMP, GIF, TIFF and WebP as Pillow identifies them;
   anything else, and any decoding failure, is `ImageError` (`image_unreadable`);
2. reads the header only, then refuses more than 40 megapixels (`ImageTooLarge`, a decompression
   bomb never gets decoded) and a short side under 128 px (`ImageTooSmall`: Juhe needs a face of at
   least 128x128);
3. decodes JPEGs with DCT-domain scaling (`draft`): a 12 MP photo is decoded at 1/4 scale, never in full;
   before any decoding, estimates from the header the memory that decoding and the conversions below
   will take, by format (see `_decode_bytes`), and refuses above MAX_DECODE_BYTES (`ImageTooLarge`).
   Only the first frame / page of an animation or multi-page file is ever decoded;
4. resizes so the long side is at most `target.max_side` (800, Juhe's recommendation), never up.
   Exception: a very elongated image keeps a 128 px short side, so its long side may exceed 800;
5. applies the EXIF orientation (an unreadable EXIF block is ignored, not fatal), flattens
   transparency onto white, converts to 8-bit RGB;
6. encodes a baseline 4:2:0 JPEG with no EXIF / ICC / comments (so no GPS or device data leaves),
   searching the quality (40-95) to land in [target.min_bytes, target.max_bytes], aiming at the top
   of that window. When quality 40 is still too big the image is scaled down further (not below a
   128 px short side); when quality 95 is still below `min_bytes` the image is simple and is sent as
   is (never padded or upscaled). The result never exceeds `target.hard_max_bytes`.

Colour profiles are not converted (a Display P3 photo is sent as if sRGB): matching is insensitive to it.
"""

from __future__ import annotations

import base64 as _b64
import binascii
import io
import math
import warnings
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from idv import errors

if TYPE_CHECKING:
    from PIL import Image as PILImage

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000
# Largest estimated peak of decoding + conversion accepted: with the interpreter, a fresh process
# stays under 256 MB of the 1024 MB Lambda. Still admits a 12 MP RGB WebP (16 bytes a pixel).
MAX_DECODE_BYTES = 192 * 1024 * 1024
MIN_SIDE = 128
QUALITY_MIN = 40
QUALITY_MAX = 95
MAX_ENCODES_PER_SIZE = 7
MAX_DOWNSCALES = 6

# Longest base64 text (no whitespace, no padding) that can decode to MAX_IMAGE_BYTES.
_MAX_BASE64_CHARS = (MAX_IMAGE_BYTES + 2) // 3 * 4
# Cheap refusal before any work: room for a data: prefix and line breaks (MIME: 2 per 76 characters).
_MAX_TEXT_CHARS = _MAX_BASE64_CHARS + _MAX_BASE64_CHARS // 10 + 1024
_BASE64_WHITESPACE = b" \t\r\n\f\v"
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")

# Pillow format ids we open (MPO is what Pillow calls a JPEG carrying extra pictures, as phones write).
_OPEN_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")
_ACCEPTED_FORMATS = frozenset({*_OPEN_FORMATS, "MPO"})
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})


@dataclass(frozen=True, slots=True)
class ImageTarget:
    """What a provider wants: JPEG bytes in [min_bytes, max_bytes] (its sweet spot), never above
    hard_max_bytes, long side at most max_side."""

    name: str
    min_bytes: int
    max_bytes: int
    hard_max_bytes: int
    max_side: int = 800

    def __post_init__(self) -> None:
        if not 0 <= self.min_bytes <= self.max_bytes <= self.hard_max_bytes:
            raise ValueError("ImageTarget needs 0 <= min_bytes <= max_bytes <= hard_max_bytes")
        if self.max_side < MIN_SIDE:
            raise ValueError(f"ImageTarget.max_side must be at least {MIN_SIDE}")


# Juhe: "大小最佳在16~20K之间, jpeg格式, 最长边像素为800" and "大小100K以内".
JUHE = ImageTarget("juhe", 16_000, 20_000, 100_000)
# Apetime: "小于等于 2 MB, 建议 32KB 以内": 32 KB is treated as a hard cap; no documented minimum,
# 16 KB keeps enough detail at 800 px.
APETIME = ImageTarget("apetime", 16_000, 32_000, 32_000)


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A provider-ready JPEG. `source_*` describe the input as displayed (after EXIF orientation)."""

    jpeg: bytes = field(repr=False)  # an image of a person: kept out of reprs and logs
    width: int
    height: int
    quality: int
    source_format: str
    source_width: int
    source_height: int

    @property
    def size(self) -> int:
        return len(self.jpeg)

    def base64(self, *, urlsafe: bool = False) -> str:
        """The JPEG as base64 text without a data: prefix (standard alphabet unless `urlsafe`)."""
        encoded = _b64.urlsafe_b64encode(self.jpeg) if urlsafe else _b64.b64encode(self.jpeg)
        return encoded.decode("ascii")


# --------------------------------------------------------------------------------------------------
# base64


def decode_base64_image(text: Any) -> bytes:
    """Image bytes from base64 text: a `data:...;base64,` prefix, whitespace and line breaks, the
    url-safe alphabet and missing padding are tolerated. ImageError when it is not base64,
    ImageTooLarge above MAX_IMAGE_BYTES (refused from the text length before decoding when possible)."""
    if not isinstance(text, str):
        raise errors.ImageError("image must be a base64 string")
    if len(text) > _MAX_TEXT_CHARS:
        raise errors.ImageTooLarge(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    body = text.lstrip()
    if body[:5].lower() == "data:":
        comma = body.find(",", 0, 256)
        if comma < 0 or not body[5:comma].lower().rstrip().endswith(";base64"):
            raise errors.ImageError("image data URL must be base64 (data:image/...;base64,...)")
        body = body[comma + 1 :]
    try:
        compact = body.encode("ascii")
    except UnicodeEncodeError:
        raise errors.ImageError("image is not valid base64") from None
    compact = compact.translate(_URLSAFE_TO_STANDARD, _BASE64_WHITESPACE).rstrip(b"=")
    if len(compact) > _MAX_BASE64_CHARS:
        raise errors.ImageTooLarge(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    if len(compact) % 4 == 1:
        raise errors.ImageError("image is not valid base64")
    compact += b"=" * (-len(compact) % 4)
    try:
        data = _b64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise errors.ImageError("image is not valid base64") from None
    if not data:
        raise errors.ImageError("image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise errors.ImageTooLarge(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    return data


def prepare_base64_image(text: Any, target: ImageTarget) -> PreparedImage:
    """`decode_base64_image` then `prepare_image`."""
    return prepare_image(decode_base64_image(text), target)


# --------------------------------------------------------------------------------------------------
# preparation


def prepare_image(raw: Any, target: ImageTarget) -> PreparedImage:
    """A provider-ready JPEG for `target` (see the module docstring). Raises only ImageError and
    its subclasses ImageTooSmall / ImageTooLarge, whatever the input."""
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise errors.ImageError("image must be bytes")
    if not raw:
        raise errors.ImageError("image is empty")
    if len(raw) > MAX_IMAGE_BYTES:
        raise errors.ImageTooLarge(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    from PIL import Image

    try:
        return _prepare(raw, target)
    except errors.IdvError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise errors.ImageTooLarge(f"image has more than {MAX_PIXELS} pixels") from exc
    except MemoryError as exc:
        raise errors.ImageTooLarge("image too large to process") from exc
    except Exception as exc:  # any decoder failure on corrupt, truncated or hostile data
        raise errors.ImageError("image could not be decoded") from exc


def _prepare(raw: bytes, target: ImageTarget) -> PreparedImage:
    from PIL import Image

    with warnings.catch_warnings():
        # Pillow warns about corrupt metadata it then skips: not worth a log line per upload.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _prepare_quietly(raw, target)


def _prepare_quietly(raw: bytes, target: ImageTarget) -> PreparedImage:
    from PIL import Image

    # One name only: once converted, the decoded original must be free to go before the resize.
    img: PILImage.Image = Image.open(io.BytesIO(raw), formats=_OPEN_FORMATS)
    source_format = img.format or ""
    if source_format not in _ACCEPTED_FORMATS:
        raise errors.ImageError("image format not supported (JPEG, PNG, BMP, GIF, TIFF or WebP)")

    width, height = img.size  # from the header: nothing decoded yet
    if width <= 0 or height <= 0:
        raise errors.ImageError("image has no pixels")
    if width * height > MAX_PIXELS:
        raise errors.ImageTooLarge(f"image has more than {MAX_PIXELS} pixels")
    if min(width, height) < MIN_SIDE:
        raise errors.ImageTooSmall(f"image short side is below {MIN_SIDE} pixels")

    out_size = _fit_within(width, height, target.max_side)
    if source_format in _JPEG_FORMATS:
        orientation = _orientation(img)  # from the APP1 segment already parsed: decodes nothing
        if out_size != (width, height):
            img.draft("RGB", out_size)  # DCT-domain scaling: decode at 1/2, 1/4 or 1/8 of full size
        _check_decode_memory(img, raw, source_format, (width, height), out_size)
        img.load()
    else:
        _check_decode_memory(img, raw, source_format, (width, height), out_size)
        # Decode first, outside `_orientation`'s guard: PNG's getexif() would otherwise run the decode
        # itself and a decoder error swallowed there would leave a half-decoded image looking loaded.
        img.load()
        orientation = _orientation(img)

    img = _to_working_mode(img)
    if img.size != out_size:
        # Hamming: after DCT scaling the remaining ratio is under 2; measured against a full-resolution
        # Lanczos reference it stays near 46 dB PSNR (the JPEG that follows costs far more, ~35 dB) at
        # half Lanczos' time on the hot path.
        img = img.resize(out_size, Image.Resampling.HAMMING, reducing_gap=2.0)
    img = _flatten_to_rgb(img)
    if orientation in _TRANSPOSE:
        img = img.transpose(Image.Transpose(_TRANSPOSE[orientation]))

    quality, jpeg, img = _encode_for_target(img, target)
    source_width, source_height = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return PreparedImage(
        jpeg=jpeg,
        width=img.width,
        height=img.height,
        quality=quality,
        source_format="JPEG" if source_format == "MPO" else source_format,
        source_width=source_width,
        source_height=source_height,
    )


def _fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size with the long side at most max_side, never upscaled, short side kept >= MIN_SIDE."""
    scale = min(1.0, max_side / max(width, height))
    scale = max(scale, min(1.0, MIN_SIDE / min(width, height)))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(img: PILImage.Image) -> int:
    """The EXIF orientation (1-8); 1 when absent or unreadable (a broken EXIF block is not fatal)."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _transpose_table() -> dict[int, int]:
    # Image.Transpose values, spelled as ints so that this module does not import Pillow.
    flip_left_right, flip_top_bottom, rotate_90, rotate_180, rotate_270, transpose, transverse = range(7)
    return {
        2: flip_left_right,
        3: rotate_180,
        4: flip_top_bottom,
        5: transpose,
        6: rotate_270,
        7: transverse,
        8: rotate_90,
    }


_TRANSPOSE = _transpose_table()


def _to_working_mode(img: PILImage.Image) -> PILImage.Image:
    """RGB, L, RGBA or LA (alpha kept so the resize can premultiply it)."""
    mode = img.mode
    has_key_colour = img.info.get("transparency") is not None
    if mode in ("RGB", "L"):
        return img.convert("RGBA") if has_key_colour else img
    if mode in ("RGBA", "LA"):
        return img
    if mode == "P":
        return img.convert("RGBA") if has_key_colour else img.convert("RGB")
    if mode in ("PA", "RGBa", "La"):
        return img.convert("RGBA")
    if mode == "1":
        return img.convert("L")
    if mode == "F":
        return img.convert("L")
    if mode.startswith("I"):
        return _high_depth_to_l(img)
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def _high_depth_to_l(img: PILImage.Image) -> PILImage.Image:
    """16/32-bit greyscale to 8 bits: 16-bit data is scaled, 8-bit data in an I image is kept."""
    if img.mode == "I;16":
        # Scaled within its own 2-byte mode, not through a 4-byte I copy: same pixels, half the memory.
        return img.point(lambda value: value * (1 / 257)).convert("L")
    sixteen_bit = img.mode.startswith("I;16")
    wide = img if img.mode == "I" else img.convert("I")
    extrema = wide.getextrema()
    high = extrema[1] if isinstance(extrema[1], int | float) else 0
    if sixteen_bit or high > 255:
        wide = wide.point(lambda value: value * (1 / 257))
    return wide.convert("L")


def _flatten_to_rgb(img: PILImage.Image) -> PILImage.Image:
    """Transparent pixels composited onto white; the result is RGB."""
    from PIL import Image

    if img.mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA") if img.mode == "LA" else img
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


# --------------------------------------------------------------------------------------------------
# decode memory, from the header


# Bytes per pixel of Pillow's own storage (every mode not listed takes 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_TIFF_JPEG_COMPRESSIONS = ("jpeg", "tiff_jpeg")
_PNG_TEXT_CHUNKS = (b"zTXt", b"iTXt")
# deflate expands at most ~1032:1; Pillow caps each text chunk and all text together.
_DEFLATE_MAX_RATIO = 1032


def _check_decode_memory(
    img: PILImage.Image, raw: bytes, source_format: str, full_size: tuple[int, int], out_size: tuple[int, int]
) -> None:
    """ImageTooLarge when decoding and converting this image would need more than MAX_DECODE_BYTES."""
    if _decode_bytes(img, raw, source_format, full_size, out_size) > MAX_DECODE_BYTES:
        raise errors.ImageTooLarge(f"image needs more than {MAX_DECODE_BYTES // (1024 * 1024)} MB to decode")


def _decode_bytes(
    img: PILImage.Image, raw: bytes, source_format: str, full_size: tuple[int, int], out_size: tuple[int, int]
) -> int:
    """Peak bytes of `load()` and the conversions after it, from what the header says (`img.size` is
    the size the decoder will produce, after any draft). The larger of two moments: during the decode
    (the image + the decoder's own buffers) and during the conversion (the image + what the decoder
    keeps + the working copy + the premultiplied copy an RGBA resize makes). Figures per format
    measured with Pillow 13 (tests/unit/test_image_memory.py)."""
    pixels = img.width * img.height
    mode = img.mode
    image = pixels * _MODE_BYTES.get(mode, 4)
    transient = kept = 0
    if source_format == "WEBP":
        # Pillow goes through libwebp's animation decoder: two canvases (4 bytes a pixel each) live as
        # long as the image, plus the frame handed over as bytes (4) while it is copied in. No scaling.
        kept = 8 * pixels
        transient = 4 * pixels
    elif source_format in _JPEG_FORMATS:
        transient = _jpeg_coefficient_bytes(img, raw, full_size)
    elif source_format == "TIFF":
        transient = _tiff_block_bytes(img)
    elif source_format == "BMP" and img.info.get("compression") in (1, 2):
        transient = 2 * pixels  # RLE: Pillow's Python decoder builds the pixels in a bytearray, then copies it
    elif source_format == "PNG":
        kept = _png_text_bytes(raw)

    working_mode, conversion = _working_mode_of(mode, img.info.get("transparency") is not None)
    working_bpp = _MODE_BYTES.get(working_mode, 4)
    working = image if conversion == 0 else pixels * working_bpp
    resizing = working
    if out_size != img.size:
        # Resizing RGBA / LA goes through a premultiplied copy of the same size, then (reducing_gap=2)
        # an integer reduce and a horizontal pass before the final vertical one.
        if working_mode in ("RGBA", "LA"):
            resizing += working
        factor_x = max(1, int(img.width / out_size[0] / 2))
        factor_y = max(1, int(img.height / out_size[1] / 2))
        reduced_rows = -(-img.height // factor_y)
        if factor_x > 1 or factor_y > 1:
            resizing += -(-img.width // factor_x) * reduced_rows * working_bpp
        resizing += out_size[0] * reduced_rows * working_bpp
    return kept + max(image + transient, image + conversion * pixels, resizing)


def _working_mode_of(mode: str, has_key_colour: bool) -> tuple[str, int]:
    """The mode `_to_working_mode` gives and the bytes per pixel it allocates on the way."""
    if mode in ("RGB", "L"):
        return ("RGBA", 4) if has_key_colour else (mode, 0)
    if mode in ("RGBA", "LA"):
        return mode, 0
    if mode == "P":
        return ("RGBA" if has_key_colour else "RGB"), 4
    if mode in ("PA", "RGBa", "La"):
        return "RGBA", 4
    if mode in ("1", "F"):
        return "L", 1
    if mode == "I;16":
        return "L", 3  # scaled in its own 2-byte mode, then 1 byte of L
    if mode.startswith("I;16"):
        return "L", 8  # through I (4) and its scaled copy (4)
    if mode == "I":
        return "L", 5
    return "RGB", 4


def _jpeg_coefficient_bytes(img: PILImage.Image, raw: bytes, full_size: tuple[int, int]) -> int:
    """libjpeg keeps every DCT coefficient of the full-size image (2 bytes each, whatever the draft
    scale) when the file has more than one scan (progressive, or one component per scan); a
    single-scan file streams through a row of blocks. Unsure counts as multi-scan."""
    layers = [(h, v) for _, h, v, _ in getattr(img, "layer", [])]
    if not layers:
        return 0
    progressive = img.info.get("progressive")
    scan = _jpeg_first_scan_components(raw)
    if not progressive and scan is not None and scan >= len(layers):
        return 0
    h_max = max(h for h, _ in layers) or 1
    v_max = max(v for _, v in layers) or 1
    mcu_columns = -(-full_size[0] // (8 * h_max))
    mcu_rows = -(-full_size[1] // (8 * v_max))
    return int(sum(mcu_columns * h * mcu_rows * v for h, v in layers)) * 64 * 2


def _jpeg_first_scan_components(raw: bytes) -> int | None:
    """How many components the first scan (SOS) carries; None when the markers cannot be walked."""
    pos, end = 2, len(raw)
    while pos + 4 < end:
        if raw[pos] != 0xFF:
            return None
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker == 0xDA:
            return raw[pos + 4]
        pos += 2 + int.from_bytes(raw[pos + 2 : pos + 4], "big")
    return None


def _tiff_block_bytes(img: PILImage.Image) -> int:
    """The buffer libtiff decodes one strip or tile into (file layout; RGBA for JPEG/YCbCr data).
    Uncompressed files go through Pillow's own reader, which needs no such buffer."""
    if not getattr(img, "use_load_libtiff", True):
        return 0
    tags = getattr(img, "tag_v2", {})
    width, height = img.size
    bits = tags.get(258, (1,))
    bits_per_pixel = sum(bits) if isinstance(bits, tuple) else int(bits)
    if tags.get(262) == 6 or getattr(img, "_compression", "") in _TIFF_JPEG_COMPRESSIONS:
        bits_per_pixel = max(bits_per_pixel, 32)
    if 322 in tags and 323 in tags:
        block_width, block_rows = int(tags[322]), int(tags[323])
    else:
        block_width, block_rows = width, min(int(tags.get(278, height) or height), height)
    return (block_width * bits_per_pixel + 7) // 8 * block_rows


def _png_text_bytes(raw: bytes) -> int:
    """An upper bound on the text Pillow inflates and keeps from zTXt / iTXt chunks (tEXt is no bigger
    than the file). Walks chunk headers only."""
    from PIL import PngImagePlugin

    total, pos, end = 0, 8, len(raw)
    while pos + 8 <= end:
        length = int.from_bytes(raw[pos : pos + 4], "big")
        kind = raw[pos + 4 : pos + 8]
        if kind in _PNG_TEXT_CHUNKS:
            total += min(PngImagePlugin.MAX_TEXT_CHUNK, length * _DEFLATE_MAX_RATIO)
        if kind == b"IEND":
            break
        pos += 12 + length
    return min(total, PngImagePlugin.MAX_TEXT_MEMORY)


# --------------------------------------------------------------------------------------------------
# encoding to a size window


def _encode(img: PILImage.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    return buffer.getvalue()


# Rough quality to start from, by the bits per pixel the goal allows (natural photos).
_BPP_TO_QUALITY = ((0.15, 40), (0.3, 50), (0.5, 70), (1.0, 85), (2.0, 95))


def _first_guess(pixels: int, goal: float) -> int:
    bpp = goal * 8 / max(pixels, 1)
    points = _BPP_TO_QUALITY
    if bpp <= points[0][0]:
        return points[0][1]
    for (b0, q0), (b1, q1) in pairwise(points):
        if bpp <= b1:
            return round(q0 + (q1 - q0) * (bpp - b0) / (b1 - b0))
    return points[-1][1]


@dataclass(slots=True)
class _Search:
    """Quality search at one pixel size. Size grows with quality (near enough to monotone)."""

    img: Any
    target: ImageTarget
    tried: dict[int, bytes] = field(default_factory=dict)

    def encode(self, quality: int) -> bytes:
        if quality not in self.tried:
            self.tried[quality] = _encode(self.img, quality)
        return self.tried[quality]

    def best_fit(self) -> tuple[int, bytes] | None:
        """The highest quality tried whose size is within max_bytes."""
        fitting = [q for q, data in self.tried.items() if len(data) <= self.target.max_bytes]
        return (max(fitting), self.tried[max(fitting)]) if fitting else None

    def run(self, start: int) -> tuple[int, bytes] | None:
        """A quality landing in the window if it can, else the best fit; None if QUALITY_MIN is too big."""
        target = self.target
        accept_from = max(target.min_bytes, int(target.max_bytes * 0.8))  # aim at the window's top
        goal = (accept_from + target.max_bytes) / 2
        low, high = QUALITY_MIN - 1, QUALITY_MAX + 1  # fits at `low`, too big at `high` (exclusive)
        quality = min(max(start, QUALITY_MIN), QUALITY_MAX)
        for _ in range(MAX_ENCODES_PER_SIZE):
            size = len(self.encode(quality))
            if accept_from <= size <= target.max_bytes:
                return quality, self.tried[quality]
            if size > target.max_bytes:
                high = quality
            else:
                low = quality
            if high - low <= 1:
                break
            quality = self._next(goal, low, high)
        return self.best_fit()

    def _next(self, goal: float, low: int, high: int) -> int:
        """Secant step on log(size) against quality, kept strictly inside (low, high)."""
        points = sorted(self.tried.items(), key=lambda item: abs(math.log(len(item[1]) / goal)))[:2]
        (q0, d0) = points[0]
        if len(points) == 2 and points[1][0] != q0 and len(points[1][1]) != len(d0):
            q1, d1 = points[1]
            slope = (math.log(len(d1)) - math.log(len(d0))) / (q1 - q0)
            if slope <= 0:
                slope = 0.02
        else:
            slope = 0.02  # typical d ln(size) / d quality for photos between 40 and 85
        guess = round(q0 + math.log(goal / len(d0)) / slope)
        guess = min(max(guess, low + 1), high - 1)
        if guess in self.tried:  # secant stalled: bisect instead
            guess = (low + high) // 2
            if guess in self.tried or not low < guess < high:
                guess = low + 1 if low + 1 not in self.tried else high - 1
        return guess


def _encode_for_target(img: Any, target: ImageTarget) -> tuple[int, bytes, Any]:
    """(quality, jpeg, image encoded): within max_bytes when reachable, never above hard_max_bytes."""
    from PIL import Image

    base = img
    accept_from = max(target.min_bytes, int(target.max_bytes * 0.8))
    goal = (accept_from + target.max_bytes) / 2
    start = _first_guess(img.width * img.height, goal)
    for _ in range(MAX_DOWNSCALES + 1):
        search = _Search(img, target)
        found = search.run(start)
        if found is not None:
            return found[0], found[1], img
        # Quality 40 is still too big: fewer pixels, from the max_side image (no cumulative blur).
        short = min(img.size)
        if short <= MIN_SIDE:
            break
        too_big = len(search.tried[QUALITY_MIN])
        factor = min(0.9, max(0.5, math.sqrt(goal / too_big) * 0.97))
        factor = max(factor, MIN_SIDE / short)
        size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
        img = base.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
        start = QUALITY_MIN
    # Smallest size allowed and still above max_bytes: accept under the hard cap, lowering quality if need be.
    for quality in (QUALITY_MIN, 30, 20, 10):
        data = _encode(img, quality)
        if len(data) <= target.hard_max_bytes:
            return quality, data, img
    raise errors.ImageTooLarge(f"image cannot be compressed under {target.hard_max_bytes} bytes")
