"""Synthetic faces: deterministic drawings per seed, and a face detector/matcher that scores real images.

Nothing here is scripted per identity: `analyze` looks at the pixels of any submitted image, finds a
face-like region (a solid skin-coloured ellipse with dark features inside: eyes, brows, mouth), and
`similarity` compares the normalized grayscale face crop of two images (Pearson correlation of the
crops after removing the average synthetic face, mapped to 0-100). The same drawing photographed
differently (crop, scale, brightness, noise, JPEG) scores >= 80; a different drawing scores < 40; a
`lookalike` (face parameters blended part-way to a stranger) lands in between.
"""

from __future__ import annotations

import io
import itertools
import math
import random
import re
from dataclasses import dataclass, replace
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

REFERENCE_SIZE = (600, 800)
FEATURE_W, FEATURE_H = 48, 62
MEAN_CROWD = 30
FINE_BLUR = 1 / 70
COARSE_BLUR = 3
MIN_FACE_PX = 128
ANALYSIS_SIDE = 240
REFINE_HALF_WIDTH = 90  # the provider document: "人脸像素不得小于128*128"

SKIN_TONES = [
    (241, 194, 167),
    (234, 188, 155),
    (224, 172, 135),
    (214, 160, 124),
    (198, 146, 112),
    (232, 182, 150),
    (226, 178, 152),
    (205, 150, 118),
]
HAIR_COLOURS = [(22, 18, 18), (40, 30, 26), (55, 40, 32), (12, 12, 14), (70, 70, 72), (120, 120, 124)]
CLOTHES = [(40, 60, 140), (50, 50, 56), (30, 110, 70), (235, 235, 240), (20, 20, 24), (90, 40, 120), (20, 40, 80)]
ID_BACKGROUNDS = [(255, 255, 255), (67, 142, 219), (200, 30, 35)]
HAIR_STYLES = ("short", "fringe", "side_part", "long", "bun", "crew")
JAWS = ("oval", "square", "round", "v")


@dataclass(frozen=True, slots=True)
class FaceParams:
    """Geometry and colours of one synthetic person (reference-canvas pixels or fractions of the face)."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    clothes: tuple[int, int, int]
    background: tuple[int, int, int]
    style: str
    jaw: str
    part: float  # -1 .. 1: where the fringe is swept from
    cx: float
    cy: float
    rx: float
    ry: float
    eye_y: float  # fraction of ry above centre
    eye_dx: float  # fraction of rx from centre
    eye_w: float
    eye_h: float
    brow_dy: float
    brow_tilt: float
    brow_w: float
    brow_arch: float
    nose_len: float
    nose_w: float
    mouth_y: float  # fraction of ry below centre
    mouth_w: float
    mouth_h: float
    smile: float
    fringe: float  # how far hair comes down the forehead (fraction of ry)
    moustache: float  # 0 = none, else thickness in px
    goatee: bool
    blush: bool
    mole: tuple[float, float] | None
    folds: bool = False  # nasolabial folds
    lines: int = 0  # forehead lines
    scar: tuple[float, float, float] | None = None  # cheek scar: side, height, angle
    face_visible: bool = True
    unit: float = 1.0  # pixel scale of fixed-size strokes (1.0 on the reference canvas)


def face_params(seed: int) -> FaceParams:
    """Deterministic person for `seed` (same seed, same face, on every machine)."""
    r = random.Random(seed * 7919 + 17)
    beard = r.random()
    return FaceParams(
        skin=r.choice(SKIN_TONES),
        hair=r.choice(HAIR_COLOURS),
        clothes=r.choice(CLOTHES),
        background=r.choice(ID_BACKGROUNDS),
        style=r.choice(HAIR_STYLES),
        jaw=r.choice(JAWS),
        part=r.uniform(-1, 1),
        cx=300 + r.uniform(-12, 12),
        cy=370 + r.uniform(-15, 15),
        rx=r.uniform(132, 176),
        ry=r.uniform(180, 228),
        eye_y=r.uniform(0.0, 0.26),
        eye_dx=r.uniform(0.28, 0.48),
        eye_w=r.uniform(18, 40),
        eye_h=r.uniform(8, 19),
        brow_dy=r.uniform(16, 46),
        brow_tilt=r.uniform(-12, 12),
        brow_w=r.uniform(4, 15),
        brow_arch=r.uniform(-10, 14),
        nose_len=r.uniform(0.18, 0.42),
        nose_w=r.uniform(12, 34),
        mouth_y=r.uniform(0.40, 0.66),
        mouth_w=r.uniform(0.24, 0.56),
        mouth_h=r.uniform(6, 24),
        smile=r.uniform(-8, 18),
        fringe=r.uniform(0.3, 0.85),
        moustache=r.uniform(7, 16) if beard < 0.25 else 0.0,
        goatee=0.15 < beard < 0.35,
        blush=r.random() < 0.3,
        mole=(r.uniform(-0.6, 0.6), r.uniform(-0.3, 0.6)) if r.random() < 0.6 else None,
        folds=r.random() < 0.4,
        lines=r.choice((0, 0, 1, 2, 3)),
        scar=(r.choice((-1.0, 1.0)), r.uniform(0.0, 0.4), r.uniform(-0.6, 0.6)) if r.random() < 0.25 else None,
    )


_NUMERIC = (
    "cx",
    "cy",
    "rx",
    "ry",
    "eye_y",
    "eye_dx",
    "eye_w",
    "eye_h",
    "brow_dy",
    "brow_tilt",
    "brow_w",
    "brow_arch",
    "nose_len",
    "nose_w",
    "mouth_y",
    "mouth_w",
    "mouth_h",
    "smile",
    "fringe",
    "part",
    "moustache",
)


_PIXELS = (
    "rx",
    "ry",
    "eye_w",
    "eye_h",
    "brow_dy",
    "brow_tilt",
    "brow_w",
    "brow_arch",
    "nose_w",
    "mouth_h",
    "smile",
    "moustache",
    "unit",
)


def placed(p: FaceParams, scale: float, dx: float, dy: float) -> FaceParams:
    """The same person drawn `scale` times larger and moved by (dx, dy) on the canvas."""
    sized = {f: getattr(p, f) * scale for f in _PIXELS}
    return replace(p, cx=p.cx * scale + dx, cy=p.cy * scale + dy, **sized)


def blend(a: FaceParams, b: FaceParams, t: float) -> FaceParams:
    """A face part-way from `a` (t=0) to `b` (t=1): a lookalike of `a` when t is small."""

    def mixc(x: tuple[int, int, int], y: tuple[int, int, int]) -> tuple[int, int, int]:
        return (round(x[0] + (y[0] - x[0]) * t), round(x[1] + (y[1] - x[1]) * t), round(x[2] + (y[2] - x[2]) * t))

    numeric = {f: getattr(a, f) + (getattr(b, f) - getattr(a, f)) * t for f in _NUMERIC}
    near = a if t < 0.5 else b
    return replace(
        a,
        skin=mixc(a.skin, b.skin),
        hair=mixc(a.hair, b.hair),
        style=near.style,
        jaw=near.jaw,
        goatee=near.goatee,
        blush=near.blush,
        mole=near.mole,
        folds=near.folds,
        lines=near.lines,
        scar=near.scar,
        **numeric,
    )


def lookalike(a: FaceParams, stranger: FaceParams, t: float) -> FaceParams:
    """Person `a` with their geometry and colouring moved a fraction `t` towards `stranger` (hair style, jaw,
    beard and marks stay `a`'s): t=0 is `a`, larger t looks less and less like them."""
    return replace(
        blend(a, stranger, t),
        style=a.style,
        jaw=a.jaw,
        goatee=a.goatee,
        blush=a.blush,
        mole=a.mole,
        folds=a.folds,
        lines=a.lines,
        scar=a.scar,
    )


def _shade(c: tuple[int, ...], f: float) -> tuple[int, int, int]:
    return (min(255, round(c[0] * f)), min(255, round(c[1] * f)), min(255, round(c[2] * f)))


def _head(d: ImageDraw.ImageDraw, p: FaceParams, fill: tuple[int, int, int]) -> None:
    cx, cy, rx, ry = p.cx, p.cy, p.rx, p.ry
    d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry * (0.2 if p.jaw != "oval" else 1.0)), fill=fill)
    if p.jaw == "oval":
        return
    if p.jaw == "square":
        d.rounded_rectangle((cx - rx, cy - ry * 0.1, cx + rx, cy + ry * 0.92), radius=rx * 0.45, fill=fill)
    elif p.jaw == "round":
        d.ellipse((cx - rx * 1.02, cy - ry * 0.55, cx + rx * 1.02, cy + ry * 0.9), fill=fill)
    else:  # "v": a pointed chin
        d.polygon(
            [
                (cx - rx, cy),
                (cx - rx * 0.82, cy + ry * 0.55),
                (cx - rx * 0.22, cy + ry * 1.0),
                (cx + rx * 0.22, cy + ry * 1.0),
                (cx + rx * 0.82, cy + ry * 0.55),
                (cx + rx, cy),
            ],
            fill=fill,
        )


def draw_person(
    p: FaceParams, canvas: tuple[int, int] = REFERENCE_SIZE, onto: Image.Image | None = None
) -> Image.Image:
    """Render the person on a plain background (ID-photo style), or onto an existing picture."""
    img = onto if onto is not None else Image.new("RGB", canvas, p.background)
    d = ImageDraw.Draw(img)
    cx, cy, rx, ry = p.cx, p.cy, p.rx, p.ry
    top = cy - ry
    # shoulders and clothes
    d.ellipse((cx - rx * 2.2, cy + ry * 1.05, cx + rx * 2.2, cy + ry * 3.6), fill=p.clothes)
    # hair behind the head
    if p.style == "long":
        d.rounded_rectangle((cx - rx * 1.22, top - ry * 0.18, cx + rx * 1.22, cy + ry * 1.25), radius=rx, fill=p.hair)
    elif p.style == "bun":
        d.ellipse((cx - rx * 0.45, top - ry * 0.55, cx + rx * 0.45, top + ry * 0.2), fill=p.hair)
    d.ellipse((cx - rx * 1.1, top - ry * 0.16, cx + rx * 1.1, cy + ry * 0.3), fill=p.hair)
    # neck (shadowed skin) and collar
    d.rectangle((cx - rx * 0.36, cy + ry * 0.6, cx + rx * 0.36, cy + ry * 1.2), fill=_shade(p.skin, 0.78))
    d.polygon(
        [(cx - rx * 0.7, cy + ry * 1.08), (cx, cy + ry * 1.35), (cx + rx * 0.7, cy + ry * 1.08)],
        fill=_shade(p.clothes, 0.8),
    )
    if not p.face_visible:  # the back of the head: hair covers everything
        d.ellipse((cx - rx * 1.08, top - ry * 0.16, cx + rx * 1.08, cy + ry * 1.02), fill=p.hair)
        return img
    # ears
    for s in (-1, 1):
        ex = cx + s * rx * 0.98
        d.ellipse((ex - rx * 0.12, cy - ry * 0.12, ex + rx * 0.12, cy + ry * 0.2), fill=_shade(p.skin, 0.95))
    _head(d, p, p.skin)
    u = p.unit
    line = _shade(p.skin, 0.62)
    for i in range(p.lines):  # forehead lines (a low fringe hides them)
        ly = top + ry * (0.30 + 0.09 * i)
        d.arc((cx - rx * 0.45, ly, cx + rx * 0.45, ly + ry * 0.12), 200, 340, fill=line, width=round(4 * u))
    # hair over the forehead
    fr = top + ry * p.fringe * 0.6
    if p.style in ("fringe", "long", "bun"):
        d.chord((cx - rx * 1.08, top - ry * 0.18, cx + rx * 1.08, 2 * fr + ry * 0.18 - top), 180, 360, fill=p.hair)
        d.polygon(
            [
                (cx - rx * 1.02, fr - ry * 0.05),
                (cx + rx * 1.02, fr - ry * 0.05),
                (cx + rx * 1.0, fr + ry * 0.1 * (1 + p.part)),
                (cx - rx * 1.0, fr + ry * 0.1 * (1 - p.part)),
            ],
            fill=p.hair,
        )
    elif p.style == "side_part":
        side = 1 if p.part >= 0 else -1
        d.polygon(
            [
                (cx - side * rx * 1.05, top + ry * 0.55),
                (cx - side * rx * 0.9, top - ry * 0.1),
                (cx + side * rx * 0.95, top - ry * 0.1),
                (cx + side * rx * 1.05, fr + ry * 0.1),
                (cx + side * rx * 0.15, fr - ry * 0.15),
            ],
            fill=p.hair,
        )
    elif p.style == "crew":
        d.chord((cx - rx * 1.02, top - ry * 0.1, cx + rx * 1.02, top + ry * 0.5), 180, 360, fill=p.hair)
    else:  # short, with a centre or side parting
        d.chord((cx - rx * 1.06, top - ry * 0.16, cx + rx * 1.06, fr + ry * 0.05), 180, 360, fill=p.hair)
        px = cx + p.part * rx * 0.5
        d.polygon(
            [(px - rx * 0.16, top - ry * 0.1), (px + rx * 0.16, top - ry * 0.1), (px, fr - ry * 0.05)], fill=p.skin
        )
    # eyes and brows
    ey = cy - ry * p.eye_y
    brow = p.hair if p.hair[0] < 90 else (60, 50, 45)
    for s in (-1, 1):
        ex = cx + s * rx * p.eye_dx
        d.ellipse((ex - p.eye_w, ey - p.eye_h, ex + p.eye_w, ey + p.eye_h), fill=(245, 245, 240))
        ir = p.eye_h * 0.95
        d.ellipse((ex - ir, ey - ir, ex + ir, ey + ir), fill=(45, 30, 25))
        d.ellipse((ex - ir * 0.4, ey - ir * 0.4, ex + ir * 0.4, ey + ir * 0.4), fill=(8, 8, 8))
        by = ey - p.eye_h - p.brow_dy
        x0, x1 = ex - p.eye_w * 1.25, ex + p.eye_w * 1.25
        tilt = p.brow_tilt * s
        d.line(
            ((x0, by + tilt), (ex, by - p.brow_arch), (x1, by - tilt)), fill=brow, width=round(p.brow_w), joint="curve"
        )
        if p.blush:
            bx, bz = cx + s * rx * 0.55, cy + ry * 0.22
            d.ellipse((bx - rx * 0.16, bz - ry * 0.07, bx + rx * 0.16, bz + ry * 0.07), fill=(222, 120, 120))
    # nose
    ny0, ny1 = ey + p.eye_h, cy + ry * p.nose_len
    nose = _shade(p.skin, 0.72)
    d.line(((cx - 3 * u, ny0), (cx - p.nose_w * 0.3, ny1)), fill=nose, width=round(4 * u))
    d.arc((cx - p.nose_w, ny1 - 10 * u, cx + p.nose_w, ny1 + 10 * u), 20, 160, fill=nose, width=round(5 * u))
    # mouth, moustache, goatee
    my = cy + ry * p.mouth_y
    mw = rx * p.mouth_w
    d.chord((cx - mw, my - p.mouth_h - p.smile * 0.5, cx + mw, my + p.mouth_h + p.smile), 0, 180, fill=(178, 62, 70))
    d.line(((cx - mw, my), (cx + mw, my)), fill=(120, 35, 45), width=round(4 * u))
    if p.moustache:
        mt = my - p.mouth_h - p.smile * 0.5 - 4 * u
        d.rounded_rectangle((cx - mw * 0.9, mt - p.moustache * 1.6, cx + mw * 0.9, mt), radius=5 * u, fill=p.hair)
    if p.goatee:
        d.ellipse((cx - rx * 0.18, my + p.mouth_h + 12 * u, cx + rx * 0.18, my + p.mouth_h + ry * 0.22), fill=p.hair)
    if p.folds:
        for s in (-1, 1):
            d.line(
                ((cx + s * p.nose_w * 1.2, ny1 - 6 * u), (cx + s * (mw + 14 * u), my + 6 * u)),
                fill=line,
                width=round(4 * u),
            )
    if p.scar:
        side, h, ang = p.scar
        sx0, sy0 = cx + side * rx * 0.45, cy + ry * h
        d.line(
            ((sx0 - rx * 0.2, sy0 - rx * 0.2 * ang), (sx0 + rx * 0.2, sy0 + rx * 0.2 * ang)),
            fill=(150, 80, 80),
            width=round(5 * u),
        )
    if p.mole:
        mx, mz = cx + rx * p.mole[0], cy + ry * p.mole[1]
        d.ellipse((mx - 7 * u, mz - 7 * u, mx + 7 * u, mz + 7 * u), fill=(70, 45, 35))
    return img


def to_jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# ---------------------------------------------------------------- photographs of a person


def _room_background(r: random.Random, size: tuple[int, int]) -> Image.Image:
    """A plausible indoor backdrop with no skin-coloured surfaces (blue-ish or grey-green walls, a door frame)."""
    w, h = size

    def wall(lo: int, hi: int) -> tuple[int, int, int]:
        red, green = r.randint(lo, hi), r.randint(lo, hi)
        return (red, green, min(255, max(red, green) + r.randint(8, 30)))

    grad = Image.linear_gradient("L").resize(size)
    img = Image.composite(Image.new("RGB", size, wall(60, 125)), Image.new("RGB", size, wall(150, 220)), grad)
    d = ImageDraw.Draw(img)
    x = r.randint(0, w // 5)
    d.rectangle((x, h // 8, x + w // 6, h), outline=(90, 95, 110), width=12)
    return img


def photograph(p: FaceParams, variant: int, *, seed: int = 0) -> Image.Image:
    """A selfie of person `p`: room background, different framing, scale, brightness and sensor noise."""
    r = random.Random(seed * 1009 + variant * 31 + 5)
    out_w, out_h = 900, 1200
    canvas = _room_background(r, (out_w, out_h))
    # framing: the head somewhere around the upper middle, 1.05-1.55x the reference size
    scale = r.uniform(1.05, 1.55)
    dx = out_w / 2 - 300 * scale + r.uniform(-70, 70)
    dy = out_h - 900 * scale + r.uniform(0, 100)
    draw_person(placed(p, scale, dx, dy), canvas=(out_w, out_h), onto=canvas)
    # brightness of the camera, sensor noise, a little softness
    bright = r.uniform(0.78, 1.18)
    canvas = canvas.point(lambda v: max(0, min(255, round(v * bright))))
    noise = Image.effect_noise((out_w // 3, out_h // 3), r.uniform(14, 30)).resize((out_w, out_h))
    canvas = Image.blend(canvas, Image.merge("RGB", (noise, noise, noise)), 0.06)
    return canvas.filter(ImageFilter.BoxBlur(r.uniform(0.4, 1.2)))


# ---------------------------------------------------------------- images without a face


def no_face_image(kind: str = "landscape", seed: int = 0) -> Image.Image:
    r = random.Random(seed + 99)
    w, h = 800, 600
    if kind == "gradient":
        grad = Image.linear_gradient("L").resize((w, h))
        return Image.composite(Image.new("RGB", (w, h), (160, 90, 60)), Image.new("RGB", (w, h), (250, 215, 185)), grad)
    if kind == "noise":
        return Image.merge(
            "RGB", [Image.effect_noise((w, h), 80).point(lambda v, k=k: (v + k * 40) % 256) for k in range(3)]
        )
    if kind == "text":
        img = Image.new("RGB", (w, h), (250, 250, 245))
        d = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=34)
        for i in range(12):
            d.text(
                (30, 20 + i * 46),
                f"SANDBOX DOCUMENT {i} - NO FACE HERE {r.randint(1000, 9999)}",
                fill=(20, 20, 20),
                font=font,
            )
        return img
    # landscape: sky, sun, sand dunes, a sea
    img = Image.new("RGB", (w, h), (120, 170, 225))
    d = ImageDraw.Draw(img)
    d.ellipse((560, 60, 660, 160), fill=(252, 230, 150))
    d.rectangle((0, 300, w, 380), fill=(40, 100, 160))
    for i in range(5):
        x = r.randint(-100, w)
        d.ellipse((x - 260, 330 + i * 30, x + 260, 700), fill=(222, 190, 142))
    d.rectangle((0, 470, w, h), fill=(226, 194, 146))
    return img.filter(ImageFilter.GaussianBlur(1.5))


# ---------------------------------------------------------------- detection and matching


@dataclass(frozen=True, slots=True)
class FaceAnalysis:
    """What the detector saw: a face box in image pixels (or none) and the normalized feature vector."""

    found: bool
    box: tuple[int, int, int, int] | None = None
    features: tuple[float, ...] | None = None
    reason: str = ""

    @property
    def face_px(self) -> int:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1]) if self.box else 0


def _skin_mask(ycc: Image.Image) -> Image.Image:
    """Skin-coloured pixels (YCbCr box rule), independent of brightness apart from very dark pixels."""
    y, cb, cr = ycc.split()
    m = ImageChops.multiply(y.point(lambda v: 255 if v >= 70 else 0), cb.point(lambda v: 255 if 77 <= v <= 127 else 0))
    return ImageChops.multiply(m, cr.point(lambda v: 255 if 133 <= v <= 173 else 0))


_RUN = re.compile(rb"\xff+")


def _largest_component(mask: bytes, w: int, h: int) -> dict[int, list[tuple[int, int]]]:
    """Runs (x0, x1 inclusive) per row of the largest 4-connected component of 255s in a w x h mask.
    Run-length labelling with union-find: fast in pure Python because it touches runs, not pixels."""
    runs: list[tuple[int, int, int]] = []  # (y, x0, x1)
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    prev: list[int] = []
    for y in range(h):
        cur = []
        j = 0
        for m in _RUN.finditer(mask, y * w, (y + 1) * w):
            x0, x1 = m.start() - y * w, m.end() - 1 - y * w
            idx = len(runs)
            runs.append((y, x0, x1))
            parent.append(idx)
            cur.append(idx)
            while j < len(prev) and runs[prev[j]][2] < x0:
                j += 1
            k = j
            while k < len(prev) and runs[prev[k]][1] <= x1:
                a, b = find(idx), find(prev[k])
                if a != b:
                    parent[a] = b
                k += 1
        prev = cur
    sizes: dict[int, int] = {}
    for i, (_, x0, x1) in enumerate(runs):
        root = find(i)
        sizes[root] = sizes.get(root, 0) + x1 - x0 + 1
    if not sizes:
        return {}
    best = max(sizes, key=lambda r: sizes[r])
    out: dict[int, list[tuple[int, int]]] = {}
    for i, (y, x0, x1) in enumerate(runs):
        if find(i) == best:
            out.setdefault(y, []).append((x0, x1))
    return out


@dataclass(frozen=True, slots=True)
class _Blob:
    """The face-shaped skin region found in one (scaled) picture, in that picture's pixels."""

    mx: float
    my: float
    a: float  # half-width
    b: float  # half-height
    region: Image.Image  # the filled outline (255 inside), neck cut off
    skin_level: int  # median luma of the skin


def _locate(img: Image.Image) -> _Blob | str:
    """Find the largest solid skin-coloured oval with eyes and a mouth in it; a reason string when none."""
    sw, sh = img.size
    ycc = img.convert("YCbCr")
    skin = _skin_mask(ycc)
    rows = _largest_component(skin.tobytes(), sw, sh)
    area = sum(x1 - x0 + 1 for runs in rows.values() for x0, x1 in runs)
    if area < max(150, 0.01 * sw * sh):
        return "no skin-coloured region large enough for a face"
    spans = {y: (runs[0][0], runs[-1][1]) for y, runs in rows.items()}
    ys = sorted(spans)
    widest = max(x1 - x0 + 1 for x0, x1 in spans.values())
    peak = max(ys, key=lambda y: spans[y][1] - spans[y][0])
    top, bottom = ys[0], ys[-1]
    for y in ys:  # cut the neck off: below the widest row, stop where the outline narrows
        if y > peak and spans[y][1] - spans[y][0] + 1 < 0.5 * widest:
            bottom = y - 1
            break
    face_rows = [y for y in ys if y <= bottom]
    luma_img = ycc.getchannel("Y")
    luma = luma_img.tobytes()
    skin_luma = sorted(v for y in face_rows for x0, x1 in rows[y] for v in luma[y * sw + x0 : y * sw + x1 + 1])
    skin_level = skin_luma[len(skin_luma) // 2]
    dark_below = skin_level * 0.7
    # feature pixels: inside the outline, and not skin or clearly darker than skin (eyes, brows, mouth)
    feat = ImageChops.lighter(ImageChops.invert(skin), luma_img.point(lambda v: 255 if v < dark_below else 0)).tobytes()
    n = holes = 0
    sx = sy = sxx = syy = 0.0
    for y in face_rows:
        x0, x1 = spans[y]
        span = x1 - x0 + 1
        n += span
        sx += span * (x0 + x1) / 2
        sxx += (x1 * (x1 + 1) * (2 * x1 + 1) - (x0 - 1) * x0 * (2 * x0 - 1)) / 6
        sy += span * y
        syy += span * y * y
        holes += feat.count(255, y * sw + x0, y * sw + x1 + 1)
    mx, my = sx / n, sy / n
    a = 2 * math.sqrt(max(sxx / n - mx * mx, 1e-6))
    b = 2 * math.sqrt(max(syy / n - my * my, 1e-6))
    aspect, fill, hole_frac = b / a, n / ((bottom - top + 1) * widest), holes / n
    if not (0.6 <= aspect <= 2.2 and fill >= 0.5 and 0.02 <= hole_frac <= 0.5):
        return f"not face-shaped (aspect {aspect:.2f}, fill {fill:.2f}, features {hole_frac:.2f})"

    def features_in(xa: float, xb: float, ya: float, yb: float) -> int:
        count = 0
        for y in range(max(top, round(ya)), min(bottom, round(yb)) + 1):
            if y in spans:
                lo, hi = max(spans[y][0], round(xa)), min(spans[y][1], round(xb))
                if lo <= hi:
                    count += feat.count(255, y * sw + lo, y * sw + hi + 1)
        return count

    unit = max(1.0, a / 40)  # the feature counts are in pixels of a ~80 px wide face
    left = features_in(mx - a, mx - a * 0.1, my - b * 0.8, my + b * 0.05) / unit**2
    right = features_in(mx + a * 0.1, mx + a, my - b * 0.8, my + b * 0.05) / unit**2
    mouth = features_in(mx - a * 0.6, mx + a * 0.6, my + b * 0.1, my + b * 0.95) / unit**2
    if min(left, right, mouth) < 3:
        return "no eyes or mouth inside the skin region"
    region = Image.new("L", (sw, sh), 0)
    draw = ImageDraw.Draw(region)
    for y in face_rows:
        draw.line(((spans[y][0], y), (spans[y][1], y)), fill=255)
    return _Blob(mx, my, a, b, region, skin_level)


def analyze(image: Image.Image) -> FaceAnalysis:
    """Find the face and compute its features: a coarse search over the whole picture, then a second pass
    on the face's neighbourhood at a fixed face size so the box does not depend on the picture's size."""
    img = image.convert("RGB")
    W, H = img.size
    k = ANALYSIS_SIDE / max(W, H)
    coarse = _locate(img.resize((max(1, round(W * k)), max(1, round(H * k))), Image.Resampling.BOX))
    if isinstance(coarse, str):
        return FaceAnalysis(False, reason=coarse)
    cx, cy, a, b = coarse.mx / k, coarse.my / k, coarse.a / k, coarse.b / k
    x0, y0 = max(0, round(cx - 1.6 * a)), max(0, round(cy - 1.6 * b))
    x1, y1 = min(W, round(cx + 1.6 * a)), min(H, round(cy + 1.6 * b))
    f = min(1.0, REFINE_HALF_WIDTH / a)  # never upscale a small face: it stays small
    near = img.crop((x0, y0, x1, y1))
    near = near.resize((max(1, round(near.width * f)), max(1, round(near.height * f))), Image.Resampling.BOX)
    fine = _locate(near)
    if isinstance(fine, str):
        return FaceAnalysis(False, reason=fine)
    box = (
        max(0, round(x0 + (fine.mx - fine.a) / f)),
        max(0, round(y0 + (fine.my - fine.b) / f)),
        min(W, round(x0 + (fine.mx + fine.a) / f)),
        min(H, round(y0 + (fine.my + fine.b) / f)),
    )
    region = Image.new("L", (W, H), 0)
    region.paste(fine.region.resize((x1 - x0, y1 - y0)), (x0, y0))
    return FaceAnalysis(True, box=box, features=_features(img, box, region, fine.skin_level))


def _features(
    img: Image.Image, box: tuple[int, int, int, int], region: Image.Image, skin_level: int
) -> tuple[float, ...]:
    """Band-pass grayscale of the face (background flattened to the skin level), inside the box's ellipse,
    zero mean and unit variance."""
    bw = box[2] - box[0]
    gray = img.crop(box).convert("L")
    gray = Image.composite(gray, Image.new("L", gray.size, skin_level), region.crop(box).filter(ImageFilter.BoxBlur(1)))
    crop = gray.filter(ImageFilter.GaussianBlur(max(0.5, bw * FINE_BLUR)))
    crop = crop.resize((FEATURE_W, FEATURE_H), Image.Resampling.BOX)
    fine = crop.tobytes()
    coarse = crop.filter(ImageFilter.GaussianBlur(COARSE_BLUR)).tobytes()
    cx, cy = (FEATURE_W - 1) / 2, (FEATURE_H - 1) / 2
    vals = [
        float(fine[i] - coarse[i])
        for i in range(FEATURE_W * FEATURE_H)
        if ((i % FEATURE_W - cx) / (FEATURE_W / 2)) ** 2 + ((i // FEATURE_W - cy) / (FEATURE_H / 2)) ** 2 <= 0.85
    ]
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)) or 1.0
    return tuple((v - mean) / sd for v in vals)


def correlation(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    da = math.sqrt(sum((x - ma) ** 2 for x in a))
    db = math.sqrt(sum((y - mb) ** 2 for y in b))
    return num / (da * db) if da and db else 0.0


@lru_cache(maxsize=1)
def mean_face() -> tuple[float, ...]:
    """The average feature vector of a fixed crowd: what all synthetic faces share (removed before matching)."""
    feats = [f for i in range(MEAN_CROWD) if (f := analyze(draw_person(face_params(800_000 + i))).features)]
    return tuple(sum(col) / len(feats) for col in zip(*feats, strict=True))


def similarity(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Correlation of two faces after removing what every synthetic face has in common (-1 .. 1)."""
    m = mean_face()
    return correlation(tuple(x - y for x, y in zip(a, m, strict=True)), tuple(x - y for x, y in zip(b, m, strict=True)))


# similarity -> 0-100 score. Calibrated on 70 people x 3 photos each plus every registry identity x 4 photos,
# re-encoded at 800 px (JPEG quality 50, or 16-20 KB): the same person correlates >= 0.90 (score >= 84);
# different people have a 99th percentile of 0.48 (score 34) and a maximum of 0.69 (score 48: now and then a
# stranger lands in the "not sure" band, as with any real matcher). The band [40, 60) is wide
# (0.60 <= r < 0.82) so a lookalike stays inside it however it is re-encoded. A compared face never scores 0
# (four-factor's document: the score is not 0 when the face was checked).
SCORE_CURVE = ((-1.0, 0.5), (0.0, 8.0), (0.60, 40.0), (0.82, 60.0), (0.87, 80.0), (1.0, 100.0))


def score(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Face score 0-100 of two feature vectors (the providers' scale: >= 60 same person, < 40 different)."""
    r = similarity(a, b)
    for (r0, s0), (r1, s1) in itertools.pairwise(SCORE_CURVE):
        if r <= r1:
            return round(s0 + (s1 - s0) * (r - r0) / (r1 - r0), 2)
    return 100.0
