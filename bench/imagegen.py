"""Deterministic test images: a 12-megapixel phone-like JPEG and a small selfie-sized JPEG.

The phone photo is what a mobile app uploads: 4032x3024, ~4 MB at quality 92, stored landscape with
EXIF orientation 6 (rotate 90° to display, as a portrait shot from an iPhone) plus the usual camera
tags. Its content is gradients, sensor-like noise and shapes so the encoder sees photo-like entropy.
"""

from __future__ import annotations

import io
import random

PHONE_SIZE = (4032, 3024)
PHONE_QUALITY = 92


def _canvas(size: tuple[int, int], seed: int, noise_sigma: float) -> object:
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    rnd = random.Random(seed)
    width, height = size
    # Smooth colour field: three rotated/scaled gradients, one per channel.
    channels = []
    for angle in (0, 35, 110):
        g = Image.linear_gradient("L").rotate(angle, resample=Image.Resampling.BILINEAR, expand=False)
        channels.append(g.resize(size, Image.Resampling.BILINEAR))
    img = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(img)
    # Shapes: "furniture", a window, a head-and-shoulders blob.
    for _ in range(40):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        x1, y1 = x0 + rnd.randrange(40, width // 3), y0 + rnd.randrange(40, height // 3)
        colour = tuple(rnd.randrange(256) for _ in range(3))
        if rnd.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    cx, cy = width // 2, height // 2
    draw.ellipse((cx - 700, cy + 300, cx + 700, cy + 1800), fill=(40, 60, 140))  # shoulders
    draw.ellipse((cx - 420, cy - 650, cx + 420, cy + 450), fill=(226, 178, 152))  # face
    for ex in (-190, 190):
        draw.ellipse((cx + ex - 70, cy - 170, cx + ex + 70, cy - 100), fill=(30, 25, 25))
    draw.arc((cx - 180, cy + 80, cx + 180, cy + 260), 20, 160, fill=(150, 40, 50), width=18)
    img = img.filter(ImageFilter.GaussianBlur(3))  # optics: soft edges
    # Sensor noise (luma + chroma), the part that makes a real photo large.
    noise = Image.merge("RGB", [Image.effect_noise(size, noise_sigma) for _ in range(3)])
    img = ImageChops.add(img, noise, scale=1.0, offset=-128)
    return img


def phone_jpeg(seed: int = 7, noise_sigma: float = 9.5) -> bytes:
    """A ~4 MB, 12 MP JPEG with EXIF orientation 6 and camera tags."""
    from PIL import Image

    img = _canvas(PHONE_SIZE, seed, noise_sigma)
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 15"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90° CW to display
    exif[0x0131] = "17.5"  # Software
    exif[0x0132] = "2026:11:22 10:00:00"  # DateTime
    out = io.BytesIO()
    img.save(out, "JPEG", quality=PHONE_QUALITY, exif=exif.tobytes(), subsampling=2)
    return out.getvalue()


def small_selfie(seed: int = 3, size: tuple[int, int] = (480, 640), target_bytes: int = 20_000) -> bytes:
    """A generic selfie-sized JPEG of about `target_bytes` (no face the sandbox would recognise)."""
    from PIL import Image  # noqa: F401

    img = _canvas(size, seed, 6.0)
    best = b""
    for quality in range(95, 20, -5):
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality)
        best = out.getvalue()
        if len(best) <= target_bytes:
            break
    return best
