"""Decoding submitted images and comparing them with the registry photo: the sandbox's face "engine"."""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from sandbox.providers import faces
from sandbox.providers.identities import Identity, reference_image

MAX_PIXELS = 40_000_000

Verdict = Literal["undecodable", "no_face", "small_face", "no_reference", "no_face_reference", "compared"]


@dataclass(frozen=True, slots=True)
class FaceResult:
    verdict: Verdict
    score: float = 0.0  # 0-100, only when compared
    face_px: int = 0


def decode_image(data: bytes) -> Image.Image | None:
    """The picture in `data` (JPEG, PNG, BMP, GIF, TIFF...), or None when it is not a readable image.
    EXIF orientation is ignored, as a plain decoder would."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                return None
            img.load()
        return img.convert("RGB")
    except Exception:  # any decoder complaint means "not an image we can read"
        return None


class FaceMatcher:
    """Caches each identity's reference analysis; compares submitted pictures with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[tuple[int, str], faces.FaceAnalysis | None] = {}

    def reference(self, ident: Identity) -> faces.FaceAnalysis | None:
        cache_key = (ident.seed, ident.reference)
        with self._lock:
            if cache_key in self._refs:
                return self._refs[cache_key]
        img = reference_image(ident)
        analysis = faces.analyze(img) if img is not None else None
        with self._lock:
            self._refs[cache_key] = analysis
        return analysis

    def examine(self, img: Image.Image | None) -> faces.FaceAnalysis | None:
        return faces.analyze(img) if img is not None else None

    def compare(self, probe: faces.FaceAnalysis | None, ident: Identity) -> FaceResult:
        """Verdict for a probe analysis (from `examine`) against the identity's registry photo."""
        if probe is None:
            return FaceResult("undecodable")
        if not probe.found:
            return FaceResult("no_face")
        if probe.face_px < faces.MIN_FACE_PX:
            return FaceResult("small_face", face_px=probe.face_px)
        ref = self.reference(ident)
        if ident.reference == "none" or ref is None:
            return FaceResult("no_reference", face_px=probe.face_px)
        if not ref.found or ref.features is None:
            return FaceResult("no_face_reference", face_px=probe.face_px)
        assert probe.features is not None
        return FaceResult("compared", faces.score(probe.features, ref.features), probe.face_px)
