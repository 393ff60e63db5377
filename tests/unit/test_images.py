"""idv.images: base64 decoding, checks, orientation, transparency, formats and the provider size targets."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import random
import statistics
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFile, ImageOps

from idv import errors, images
from idv.images import (
    APETIME,
    JUHE,
    MAX_IMAGE_BYTES,
    ImageTarget,
    PreparedImage,
    decode_base64_image,
    prepare_base64_image,
    prepare_image,
)

LAYER = Path(__file__).resolve().parents[2] / "layers" / "idv"

# ---------------------------------------------------------------------------------------------------
# helpers


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def decoded(prepared: PreparedImage) -> Image.Image:
    img = Image.open(io.BytesIO(prepared.jpeg))
    assert img.format == "JPEG"
    img.load()
    return img


def quadrants(width: int, height: int) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, yellow bottom-right: distinct under all 8 EXIF
    orientations."""
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    w2, h2 = width // 2, height // 2
    draw.rectangle((0, 0, w2, h2), fill=(255, 0, 0))
    draw.rectangle((w2, 0, width, h2), fill=(0, 255, 0))
    draw.rectangle((0, h2, w2, height), fill=(0, 0, 255))
    draw.rectangle((w2, h2, width, height), fill=(255, 255, 0))
    return img


def quadrant_colours(img: Image.Image) -> list[tuple[int, int, int]]:
    w, h = img.size
    rgb = img.convert("RGB")
    return [
        rgb.getpixel((x, y))
        for x, y in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4))
    ]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def with_orientation(img: Image.Image, orientation: int, **params: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), quality=90, **params)


def phone_photo(width: int = 4000, height: int = 3000, sigma: float = 30, seed: int = 7) -> bytes:
    """A phone-like JPEG: gradients, shapes, sensor-like noise, quality 92 (about 3.6 MB at 12 MP)."""
    rnd = random.Random(seed)
    base = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.linear_gradient("L").rotate(90).resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
        ),
    )
    draw = ImageDraw.Draw(base)
    for _ in range(60):
        x, y, s = rnd.randrange(width), rnd.randrange(height), rnd.randrange(50, 800)
        draw.ellipse((x, y, x + s, y + s * 1.3), fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    noise = Image.merge("RGB", [Image.effect_noise((width, height), sigma) for _ in range(3)])
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Model X"  # Model
    return encode(Image.blend(base, noise, 0.25), "JPEG", quality=92, exif=exif.tobytes())


def png_with_size_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, followed by a tiny (wrong) IDAT: decoding it would fail."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_with_size_header(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 is patched to claim width x height."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (90, 90, 90)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


class LoadSpy:
    """Records the size of every Pillow ImageFile decoded (after any draft) and its format."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str | None, tuple[int, int]]] = []
        original = ImageFile.ImageFile.load
        spy = self

        def load(self_img: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
            if self_img.tile:  # pixels still to decode (later calls on a loaded image are no-ops)
                spy.calls.append((self_img.format, self_img.size))
            return original(self_img)

        monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.fixture(scope="module")
def phone_jpeg() -> bytes:
    return phone_photo()


# ---------------------------------------------------------------------------------------------------
# import cost


def test_importing_images_does_not_import_pillow() -> None:
    code = (
        "import sys, idv.images, idv.errors\nprint('PIL' in sys.modules, any(m.startswith('PIL') for m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=str(LAYER) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "False"]


def test_decoding_base64_does_not_import_pillow() -> None:
    code = (
        "import sys, base64, idv.images\n"
        "idv.images.decode_base64_image(base64.b64encode(b'not an image').decode())\n"
        "print('PIL' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(LAYER) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------
# base64


class TestDecodeBase64:
    payload = bytes(range(256)) * 3 + b"\xfb\xff\xfe"  # exercises + / and - _ in the alphabets

    def test_plain(self) -> None:
        assert decode_base64_image(base64.b64encode(self.payload).decode()) == self.payload

    @pytest.mark.parametrize(
        "prefix",
        ["data:image/jpeg;base64,", "data:image/jpg;base64,", "DATA:IMAGE/PNG;BASE64,", "  data:image/png;base64,"],
    )
    def test_data_url_prefix(self, prefix: str) -> None:
        assert decode_base64_image(prefix + base64.b64encode(self.payload).decode()) == self.payload

    def test_urlsafe_alphabet(self) -> None:
        text = base64.urlsafe_b64encode(self.payload).decode()
        assert "-" in text or "_" in text
        assert decode_base64_image(text) == self.payload

    @pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 100, 101, 102])
    def test_missing_padding(self, length: int) -> None:
        data = self.payload[:length]
        assert decode_base64_image(base64.b64encode(data).decode().rstrip("=")) == data

    def test_line_breaks_and_whitespace(self) -> None:
        mime = base64.encodebytes(self.payload).decode()  # 76-char lines with \n
        assert "\n" in mime
        assert decode_base64_image(mime) == self.payload
        assert decode_base64_image(mime.replace("\n", "\r\n")) == self.payload
        assert decode_base64_image(" \t" + mime.replace("\n", " \n\t") + "  ") == self.payload

    def test_all_forms_agree(self) -> None:
        standard = base64.b64encode(self.payload).decode()
        forms = [
            standard,
            "data:image/jpeg;base64," + standard,
            base64.urlsafe_b64encode(self.payload).decode(),
            standard.rstrip("="),
            base64.encodebytes(self.payload).decode(),
            "data:image/png;base64,\n" + base64.urlsafe_b64encode(self.payload).decode().rstrip("="),
        ]
        assert {decode_base64_image(form) for form in forms} == {self.payload}

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "   ",
            "====",
            "A",  # one leftover character can never be base64
            "AAAAA",
            "!!!!",
            "QUJD*REVG",
            "QUJD=REVG",  # padding in the middle
            "ＱＵＪＤ",  # fullwidth letters
            "data:image/jpeg,QUJD",  # not base64 data URL
            "data:image/jpeg;base64",  # no comma
            "data:image/jpeg;base64,",  # nothing after it
            "data:image/jpeg;base64,@@@@",
        ],
    )
    def test_unreadable(self, text: str) -> None:
        with pytest.raises(errors.ImageError) as info:
            decode_base64_image(text)
        assert type(info.value) is errors.ImageError
        assert info.value.code == "image_unreadable"

    @pytest.mark.parametrize("value", [None, 123, b"QUJD", bytearray(b"QUJD"), ["QUJD"], {"image": "QUJD"}])
    def test_non_string(self, value: object) -> None:
        with pytest.raises(errors.ImageError):
            decode_base64_image(value)

    def test_just_under_the_limit_decodes(self) -> None:
        data = b"\xab" * MAX_IMAGE_BYTES
        assert decode_base64_image(base64.encodebytes(data).decode()) == data

    def test_just_over_the_limit_is_too_large(self) -> None:
        text = base64.b64encode(b"\xab" * (MAX_IMAGE_BYTES + 1)).decode()
        with pytest.raises(errors.ImageTooLarge) as info:
            decode_base64_image(text)
        assert info.value.status == 413

    def test_huge_text_refused_before_decoding(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def no_decode(*args: object, **kwargs: object) -> bytes:
            raise AssertionError("decoded a text that is too long to be within the limit")

        monkeypatch.setattr(base64, "b64decode", no_decode)
        with pytest.raises(errors.ImageTooLarge):
            decode_base64_image("A" * (MAX_IMAGE_BYTES * 2))
        with pytest.raises(errors.ImageTooLarge):  # invalid characters too: refused on length alone
            decode_base64_image("!" * (MAX_IMAGE_BYTES * 2))
        with pytest.raises(errors.ImageTooLarge):  # compact length over the limit
            decode_base64_image("A" * (images._MAX_BASE64_CHARS + 8))

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=300))
    def test_random_text_only_raises_image_error(self, text: str) -> None:
        try:
            result = decode_base64_image(text)
        except errors.ImageError:
            return
        assert isinstance(result, bytes)
        assert result

    @settings(max_examples=200, deadline=None)
    @given(st.binary(min_size=1, max_size=500), st.booleans(), st.booleans(), st.integers(min_value=1, max_value=90))
    def test_roundtrip_property(self, data: bytes, urlsafe: bool, strip_padding: bool, line: int) -> None:
        text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
        if strip_padding:
            text = text.rstrip("=")
        text = "\n".join(text[i : i + line] for i in range(0, len(text), line))
        assert decode_base64_image(text) == data


# ---------------------------------------------------------------------------------------------------
# targets and the prepared image


def test_targets() -> None:
    assert (JUHE.min_bytes, JUHE.max_bytes, JUHE.hard_max_bytes, JUHE.max_side) == (16_000, 20_000, 100_000, 800)
    assert APETIME.max_bytes == APETIME.hard_max_bytes == 32_000
    assert APETIME.min_bytes <= APETIME.max_bytes
    with pytest.raises(ValueError):
        ImageTarget("bad", 30_000, 20_000, 100_000)
    with pytest.raises(ValueError):
        ImageTarget("bad", 0, 20_000, 10_000)
    with pytest.raises(ValueError):
        ImageTarget("bad", 0, 1, 1, max_side=64)


def test_prepared_image_base64_and_repr() -> None:
    prepared = prepare_image(encode(quadrants(300, 200), "PNG"), JUHE)
    assert base64.b64decode(prepared.base64(), validate=True) == prepared.jpeg
    assert not prepared.base64().startswith("data:")
    assert base64.urlsafe_b64decode(prepared.base64(urlsafe=True)) == prepared.jpeg
    assert prepared.size == len(prepared.jpeg)
    assert "jpeg=" not in repr(prepared)  # image bytes never end up in a log line
    with pytest.raises(AttributeError):
        prepared.quality = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------
# the 12 MP phone photo


class TestPhonePhoto:
    def test_fixture_is_phone_like(self, phone_jpeg: bytes) -> None:
        assert 2_500_000 <= len(phone_jpeg) <= 5_000_000
        assert Image.open(io.BytesIO(phone_jpeg)).size == (4000, 3000)

    def test_juhe_window(self, phone_jpeg: bytes) -> None:
        prepared = prepare_image(phone_jpeg, JUHE)
        img = decoded(prepared)
        assert img.size == (prepared.width, prepared.height) == (800, 600)
        assert img.mode == "RGB"
        assert JUHE.min_bytes <= prepared.size <= JUHE.max_bytes
        assert images.QUALITY_MIN <= prepared.quality <= images.QUALITY_MAX
        assert (prepared.source_format, prepared.source_width, prepared.source_height) == ("JPEG", 4000, 3000)

    def test_apetime_window(self, phone_jpeg: bytes) -> None:
        prepared = prepare_image(phone_jpeg, APETIME)
        assert max(prepared.width, prepared.height) <= 800
        assert prepared.size <= APETIME.hard_max_bytes
        assert prepared.size >= APETIME.min_bytes
        assert prepared.quality > prepare_image(phone_jpeg, JUHE).quality  # the bigger budget is used

    def test_decoded_at_reduced_scale(self, phone_jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
        spy = LoadSpy(monkeypatch)
        prepare_image(phone_jpeg, JUHE)
        assert spy.calls == [("JPEG", (1000, 750))]  # DCT-scaled 1/4, never the full 4000x3000

    def test_metadata_is_stripped(self, phone_jpeg: bytes) -> None:
        assert Image.open(io.BytesIO(phone_jpeg)).getexif().get(0x010F) == "PhoneMaker"
        img = decoded(prepare_image(phone_jpeg, JUHE))
        assert not img.getexif()
        assert "icc_profile" not in img.info
        assert not img.info.get("progressive")

    def test_speed(self, phone_jpeg: bytes) -> None:
        prepare_image(phone_jpeg, JUHE)  # warm-up: Pillow import and plugin init
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            prepare_image(phone_jpeg, JUHE)
            timings.append(time.perf_counter() - started)
        # The target is about 60 ms p50 on 2 cores; this bound only catches a full-resolution decode.
        assert statistics.median(timings) < 0.4

    def test_base64_convenience(self, phone_jpeg: bytes) -> None:
        text = "data:image/jpeg;base64," + base64.b64encode(phone_jpeg).decode()
        assert prepare_base64_image(text, JUHE).jpeg == prepare_image(phone_jpeg, JUHE).jpeg


# ---------------------------------------------------------------------------------------------------
# orientation


class TestOrientation:
    def test_orientation_6_becomes_portrait(self) -> None:
        # Stored landscape 1200x900, EXIF 6 = rotate 90° clockwise to display: portrait 600x800 out.
        prepared = prepare_image(with_orientation(quadrants(1200, 900), 6), JUHE)
        assert (prepared.width, prepared.height) == (600, 800)
        assert (prepared.source_width, prepared.source_height) == (900, 1200)
        # Rotating clockwise puts the stored bottom-left (blue) at the top-left, top-left (red) at top-right.
        colours = quadrant_colours(decoded(prepared))
        expected = [(0, 0, 255), (255, 0, 0), (255, 255, 0), (0, 255, 0)]
        assert all(close(got, want) for got, want in zip(colours, expected, strict=True)), colours

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_every_orientation_matches_pillow_exif_transpose(self, orientation: int) -> None:
        data = with_orientation(quadrants(1000, 600), orientation)
        reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        prepared = prepare_image(data, JUHE)
        out = decoded(prepared)
        assert out.size[0] > out.size[1] if reference.size[0] > reference.size[1] else out.size[0] < out.size[1]
        assert max(out.size) == 800
        pairs = zip(quadrant_colours(out), quadrant_colours(reference), strict=True)
        assert all(close(got, want) for got, want in pairs)

    def test_orientation_with_draft_on_large_jpeg(self, monkeypatch: pytest.MonkeyPatch) -> None:
        spy = LoadSpy(monkeypatch)
        prepared = prepare_image(with_orientation(quadrants(4000, 3000), 8), JUHE)
        assert spy.calls == [("JPEG", (1000, 750))]
        assert (prepared.width, prepared.height) == (600, 800)
        # EXIF 8 = rotate 90° counter-clockwise: stored top-right (green) goes to the top-left.
        assert close(quadrant_colours(decoded(prepared))[0], (0, 255, 0))

    def test_orientation_in_png_exif(self) -> None:
        exif = Image.Exif()
        exif[0x0112] = 3
        prepared = prepare_image(encode(quadrants(400, 300), "PNG", exif=exif.tobytes()), JUHE)
        assert close(quadrant_colours(decoded(prepared))[0], (255, 255, 0))  # rotated 180°

    def test_broken_exif_is_ignored(self) -> None:
        data = encode(quadrants(400, 300), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f garbage")
        prepared = prepare_image(data, JUHE)
        assert (prepared.width, prepared.height) == (400, 300)


# ---------------------------------------------------------------------------------------------------
# formats, modes and transparency


class TestFormats:
    @pytest.mark.parametrize(
        ("fmt", "params"),
        [
            ("PNG", {}),
            ("BMP", {}),
            ("GIF", {}),
            ("TIFF", {}),
            ("TIFF", {"compression": "tiff_lzw"}),
            ("WEBP", {"quality": 90}),
            ("JPEG", {}),
        ],
    )
    def test_inputs_become_jpeg(self, fmt: str, params: dict) -> None:
        prepared = prepare_image(encode(quadrants(400, 300), fmt, **params), JUHE)
        out = decoded(prepared)
        assert out.mode == "RGB"
        assert out.size == (400, 300)  # never upscaled
        assert prepared.source_format == fmt
        assert all(
            close(got, want, 60)
            for got, want in zip(
                quadrant_colours(out), [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)], strict=True
            )
        )

    def test_large_png_is_resized(self) -> None:
        prepared = prepare_image(encode(quadrants(2400, 1800), "PNG"), JUHE)
        assert (prepared.width, prepared.height) == (800, 600)

    def test_mpo_from_a_phone_counts_as_jpeg(self) -> None:
        first, second = quadrants(1600, 1200), quadrants(400, 300)
        data = encode(first, "MPO", save_all=True, append_images=[second])
        assert Image.open(io.BytesIO(data)).format == "MPO"
        prepared = prepare_image(data, JUHE)
        assert prepared.source_format == "JPEG"
        assert (prepared.width, prepared.height) == (800, 600)

    def test_animated_gif_uses_the_first_frame(self) -> None:
        frames = [Image.new("RGB", (300, 300), colour) for colour in ((255, 0, 0), (0, 0, 255))]
        data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
        assert close(decoded(prepare_image(data, JUHE)).getpixel((150, 150)), (255, 0, 0))

    def test_greyscale_and_cmyk(self) -> None:
        grey = decoded(prepare_image(encode(Image.new("L", (300, 300), 128), "JPEG"), JUHE))
        assert grey.mode == "RGB"
        assert close(grey.getpixel((10, 10)), (128, 128, 128), 4)
        cmyk = decoded(prepare_image(encode(Image.new("CMYK", (300, 300), (0, 255, 255, 0)), "JPEG"), JUHE))
        assert cmyk.mode == "RGB"
        assert close(cmyk.getpixel((10, 10)), (255, 0, 0), 30)

    def test_sixteen_bit_greyscale_png_is_scaled_not_clipped(self) -> None:
        img = Image.new("I;16", (300, 300), 40000)
        data = encode(img, "PNG")
        assert Image.open(io.BytesIO(data)).mode.startswith("I")
        pixel = decoded(prepare_image(data, JUHE)).getpixel((10, 10))
        assert close(pixel, (155, 155, 155), 4)  # 40000 / 257, not white

    def test_one_bit_tiff(self) -> None:
        img = Image.new("1", (300, 300), 1)
        assert close(decoded(prepare_image(encode(img, "TIFF"), JUHE)).getpixel((5, 5)), (255, 255, 255), 4)

    @pytest.mark.parametrize("fmt", ["ICO", "JPEG2000", "PPM", "PDF", "TGA"])
    def test_other_formats_refused(self, fmt: str) -> None:
        data = encode(quadrants(256, 256), fmt)
        with pytest.raises(errors.ImageError) as info:
            prepare_image(data, JUHE)
        assert type(info.value) is errors.ImageError


class TestTransparency:
    def test_png_alpha_becomes_white(self) -> None:
        img = Image.new("RGBA", (400, 300), (0, 0, 0, 0))  # transparent *black*
        ImageDraw.Draw(img).rectangle((200, 0, 400, 300), fill=(255, 0, 0, 255))
        out = decoded(prepare_image(encode(img, "PNG"), JUHE))
        assert close(out.getpixel((50, 150)), (255, 255, 255), 8)
        assert close(out.getpixel((350, 150)), (255, 0, 0), 20)

    def test_half_transparent_is_blended_with_white(self) -> None:
        img = Image.new("RGBA", (300, 300), (0, 0, 0, 128))
        out = decoded(prepare_image(encode(img, "PNG"), JUHE))
        assert close(out.getpixel((150, 150)), (127, 127, 127), 6)

    def test_resized_alpha_has_no_dark_fringe(self) -> None:
        img = Image.new("RGBA", (1600, 1200), (0, 0, 0, 0))
        ImageDraw.Draw(img).rectangle((800, 0, 1600, 1200), fill=(255, 255, 255, 255))
        out = decoded(prepare_image(encode(img, "PNG"), JUHE))
        assert out.convert("L").getextrema()[0] >= 235  # premultiplied resize: transparent black never shows

    def test_palette_with_transparency(self) -> None:
        img = Image.new("P", (300, 300), 0)
        img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
        ImageDraw.Draw(img).rectangle((150, 0, 300, 300), fill=1)
        out = decoded(prepare_image(encode(img, "PNG", transparency=0), JUHE))
        assert close(out.getpixel((50, 150)), (255, 255, 255), 8)
        assert close(out.getpixel((250, 150)), (0, 0, 255), 30)

    def test_gif_transparency(self) -> None:
        img = Image.new("P", (300, 300), 0)
        img.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
        ImageDraw.Draw(img).rectangle((0, 0, 100, 300), fill=1)
        out = decoded(prepare_image(encode(img, "GIF", transparency=0), JUHE))
        assert close(out.getpixel((250, 150)), (255, 255, 255), 8)
        assert close(out.getpixel((50, 150)), (0, 128, 0), 30)

    def test_rgb_png_colour_key(self) -> None:
        img = quadrants(300, 300)
        ImageDraw.Draw(img).rectangle((0, 0, 300, 60), fill=(1, 2, 3))
        out = decoded(prepare_image(encode(img, "PNG", transparency=(1, 2, 3)), JUHE))
        assert close(out.getpixel((150, 20)), (255, 255, 255), 8)

    def test_la_and_webp_alpha(self) -> None:
        la = Image.new("LA", (300, 300), (0, 0))
        assert close(decoded(prepare_image(encode(la, "PNG"), JUHE)).getpixel((5, 5)), (255, 255, 255), 8)
        webp = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
        assert close(
            decoded(prepare_image(encode(webp, "WEBP", lossless=True), JUHE)).getpixel((5, 5)), (255, 255, 255), 8
        )


# ---------------------------------------------------------------------------------------------------
# size limits


class TestLimits:
    def test_huge_real_jpeg_refused_without_decoding(self, monkeypatch: pytest.MonkeyPatch) -> None:
        data = encode(Image.new("L", (9000, 5000), 100), "JPEG", quality=10)
        assert len(data) < MAX_IMAGE_BYTES
        spy = LoadSpy(monkeypatch)
        with pytest.raises(errors.ImageTooLarge) as info:
            prepare_image(data, JUHE)
        assert spy.calls == []
        assert info.value.status == 413
        assert info.value.code == "image_too_large"

    @pytest.mark.parametrize("make", [png_with_size_header, jpeg_with_size_header])
    def test_header_claiming_45_megapixels(self, make) -> None:  # type: ignore[no-untyped-def]
        # Only the header says 9000x5000: a decode would fail as unreadable, so "too large" proves none ran.
        with pytest.raises(errors.ImageTooLarge):
            prepare_image(make(9000, 5000), JUHE)

    def test_pixel_limit_boundary(self) -> None:
        with pytest.raises(errors.ImageError) as info:
            prepare_image(png_with_size_header(8000, 5000), JUHE)  # exactly 40 MP: allowed, then unreadable
        assert type(info.value) is errors.ImageError
        with pytest.raises(errors.ImageTooLarge):
            prepare_image(png_with_size_header(8001, 5000), JUHE)

    def test_decompression_bomb_beyond_pillow_limit(self) -> None:
        with pytest.raises(errors.ImageTooLarge):
            prepare_image(png_with_size_header(30000, 30000), JUHE)

    def test_too_many_bytes(self) -> None:
        with pytest.raises(errors.ImageTooLarge):
            prepare_image(b"\xff\xd8" + b"\0" * MAX_IMAGE_BYTES, JUHE)

    @pytest.mark.parametrize("size", [(100, 100), (127, 500), (500, 127), (1, 1)])
    def test_too_small(self, size: tuple[int, int]) -> None:
        with pytest.raises(errors.ImageTooSmall) as info:
            prepare_image(encode(Image.new("RGB", size, (200, 10, 10)), "PNG"), JUHE)
        assert info.value.code == "image_too_small"
        assert info.value.status == 422

    def test_too_small_checked_before_decoding(self, monkeypatch: pytest.MonkeyPatch) -> None:
        spy = LoadSpy(monkeypatch)
        with pytest.raises(errors.ImageTooSmall):
            prepare_image(jpeg_with_size_header(100, 90), JUHE)
        assert spy.calls == []

    def test_smallest_allowed(self) -> None:
        prepared = prepare_image(encode(quadrants(128, 128), "PNG"), JUHE)
        assert (prepared.width, prepared.height) == (128, 128)

    def test_elongated_image_keeps_a_128_px_short_side(self) -> None:
        prepared = prepare_image(encode(quadrants(2000, 200), "PNG"), JUHE)
        assert (prepared.width, prepared.height) == (1280, 128)


# ---------------------------------------------------------------------------------------------------
# fitting the byte window


class TestByteWindow:
    def test_noise_is_scaled_down_to_fit(self) -> None:
        noise = Image.merge("RGB", [Image.effect_noise((1200, 900), 90) for _ in range(3)])
        for target in (JUHE, APETIME):
            prepared = prepare_image(encode(noise, "PNG"), target)
            assert prepared.size <= target.max_bytes
            assert max(prepared.width, prepared.height) < 800  # had to lose pixels
            assert min(prepared.width, prepared.height) >= images.MIN_SIDE
            assert prepared.quality >= images.QUALITY_MIN
            assert abs(prepared.width / prepared.height - 4 / 3) < 0.02  # aspect kept

    def test_simple_image_is_not_padded(self) -> None:
        prepared = prepare_image(encode(Image.new("RGB", (1000, 1000), (30, 120, 200)), "PNG"), JUHE)
        assert prepared.quality == images.QUALITY_MAX
        assert prepared.size < JUHE.min_bytes
        assert (prepared.width, prepared.height) == (800, 800)

    def test_never_above_hard_max_even_at_the_floor(self) -> None:
        # A tiny budget no real provider has: the 128 px floor and lower qualities still stay under hard_max.
        tight = ImageTarget("tight", 0, 1_000, 6_000)
        noise = Image.merge("RGB", [Image.effect_noise((600, 600), 120) for _ in range(3)])
        prepared = prepare_image(encode(noise, "PNG"), tight)
        assert prepared.size <= tight.hard_max_bytes
        assert min(prepared.width, prepared.height) == images.MIN_SIDE

    def test_impossible_budget_is_too_large(self) -> None:
        impossible = ImageTarget("impossible", 0, 100, 100)
        noise = Image.merge("RGB", [Image.effect_noise((300, 300), 120) for _ in range(3)])
        with pytest.raises(errors.ImageTooLarge):
            prepare_image(encode(noise, "PNG"), impossible)

    @pytest.mark.parametrize("sigma", [5, 15, 30, 60])
    def test_photos_of_varied_detail_land_in_window(self, sigma: float) -> None:
        data = phone_photo(1600, 1200, sigma=sigma, seed=sigma)
        for target in (JUHE, APETIME):
            prepared = prepare_image(data, target)
            assert prepared.size <= target.max_bytes
            if (prepared.width, prepared.height) == (800, 600) and prepared.quality < images.QUALITY_MAX:
                assert prepared.size >= target.min_bytes


# ---------------------------------------------------------------------------------------------------
# hostile and broken input


class TestBrokenInput:
    @pytest.mark.parametrize(
        "data",
        [
            b"not an image at all",
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"GIF89a",
            b"BM",
            b"II*\x00",
            b"RIFF\x00\x00\x00\x00WEBP",
            b"\0" * 1000,
        ],
    )
    def test_corrupt_bytes(self, data: bytes) -> None:
        with pytest.raises(errors.ImageError):
            prepare_image(data, JUHE)

    @pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])
    def test_truncated(self, fmt: str) -> None:
        noise = Image.merge("RGB", [Image.effect_noise((400, 300), 40) for _ in range(3)])
        data = encode(noise, fmt)
        with pytest.raises(errors.ImageError) as info:
            prepare_image(data[: len(data) // 2], JUHE)
        assert type(info.value) is errors.ImageError

    def test_corrupt_png_pixel_data_with_valid_crc(self) -> None:
        # A broken deflate stream inside a well-formed chunk: Pillow clears the tile before raising,
        # so a decode error swallowed anywhere would leave a half-decoded image that looks loaded.
        rows = b"".join(b"\0" + bytes([200, 10, 10]) * 300 for _ in range(300))
        deflated = bytearray(zlib.compress(rows))
        deflated[len(deflated) // 2 : len(deflated) // 2 + 20] = b"\xff" * 20

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        ihdr = struct.pack(">IIBBBBB", 300, 300, 8, 2, 0, 0, 0)
        data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(deflated)) + chunk(b"IEND", b"")
        with pytest.raises(errors.ImageError) as info:
            prepare_image(data, JUHE)
        assert type(info.value) is errors.ImageError

    def test_truncated_phone_jpeg(self, phone_jpeg: bytes) -> None:
        with pytest.raises(errors.ImageError):
            prepare_image(phone_jpeg[: len(phone_jpeg) * 2 // 3], JUHE)

    @pytest.mark.parametrize("value", [None, "a string", 12, ["x"], Image.new("RGB", (200, 200))])
    def test_not_bytes(self, value: object) -> None:
        with pytest.raises(errors.ImageError):
            prepare_image(value, JUHE)

    def test_empty(self) -> None:
        with pytest.raises(errors.ImageError):
            prepare_image(b"", JUHE)

    def test_bytearray_and_memoryview_accepted(self) -> None:
        data = encode(quadrants(200, 200), "PNG")
        assert prepare_image(bytearray(data), JUHE).jpeg == prepare_image(memoryview(data), JUHE).jpeg

    def test_unexpected_pillow_errors_are_image_errors(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def explode(*args: object, **kwargs: object) -> None:
            raise RuntimeError("decoder bug")

        monkeypatch.setattr(Image, "open", explode)
        with pytest.raises(errors.ImageError):
            prepare_image(b"\xff\xd8\xff\xe0 whatever", JUHE)

        def oom(*args: object, **kwargs: object) -> None:
            raise MemoryError

        monkeypatch.setattr(Image, "open", oom)
        with pytest.raises(errors.ImageTooLarge):
            prepare_image(b"\xff\xd8\xff\xe0 whatever", JUHE)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=2000))
    def test_random_bytes_only_raise_image_error(self, data: bytes) -> None:
        try:
            prepared = prepare_image(data, JUHE)
        except errors.ImageError:
            return
        assert prepared.size <= JUHE.hard_max_bytes

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=3000))
    def test_random_bytes_after_a_valid_header(self, tail: bytes) -> None:
        for header in (
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff\xe0",
            b"GIF89a",
            b"BM",
            b"II*\x00",
            b"MM\x00*",
            b"RIFF\x00\x10\x00\x00WEBPVP8 ",
        ):
            with contextlib.suppress(errors.ImageError):
                prepare_image(header + tail, JUHE)


_SEEDS = {
    fmt: encode(Image.merge("RGB", [Image.effect_noise((140, 130), 50) for _ in range(3)]), fmt, **params)
    for fmt, params in (("JPEG", {"quality": 80}), ("PNG", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {}))
}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255)), max_size=6
    ),
    cut=st.one_of(st.none(), st.integers(min_value=1, max_value=20_000)),
)
def test_mutated_images_only_raise_image_error(fmt: str, edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_SEEDS[fmt])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[:cut]
    try:
        prepared = prepare_image(bytes(data), JUHE)
    except errors.ImageError:
        return
    assert prepared.size <= JUHE.hard_max_bytes
    assert decoded(prepared).mode == "RGB"


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text_through_the_base64_convenience(text: str) -> None:
    with contextlib.suppress(errors.ImageError):
        prepare_base64_image(text, JUHE)
