"""Face matching is computed from pixels: robust to a gateway's re-encoding, low for strangers, "no face"
for pictures without one, and the Apetime review band reachable."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from sandbox.providers import (
    faces,
    identity,
    lookalike_jpeg,
    no_face_jpeg,
    other_person_jpeg,
    scenario_selfie_jpeg,
    selfie_jpeg,
    small_face_jpeg,
)
from sandbox.providers.identities import reference_image
from tests.sandbox.helpers import at_quality, provider_ready


def score_of(data: bytes, scenario: str) -> float:
    probe = faces.analyze(Image.open(io.BytesIO(data)))
    assert probe.found, probe.reason
    ref = faces.analyze(reference_image(identity(scenario)))
    return faces.score(probe.features, ref.features)


@pytest.mark.parametrize("scenario", ["match", "minority_name", "four_factor_100", "liveness_intent", "fault_reset"])
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_same_person_scores_at_least_80_after_resize_and_heavy_jpeg(scenario, variant):
    photo = selfie_jpeg(scenario, variant)
    ready = provider_ready(photo)  # <= 800 px, 16-20 KB
    assert 16_000 <= len(ready) <= 20_000 and max(Image.open(io.BytesIO(ready)).size) <= 800
    assert score_of(ready, scenario) >= 80
    assert score_of(at_quality(photo, 50), scenario) >= 80
    assert score_of(photo, scenario) >= 80


@pytest.mark.parametrize("seed", range(8))
def test_another_person_scores_below_40(seed):
    for scenario in ("match", "minority_name"):
        assert score_of(provider_ready(other_person_jpeg(seed)), scenario) < 40


@pytest.mark.parametrize("kind", ["landscape", "gradient", "noise", "text"])
def test_pictures_without_a_face_are_detected(kind):
    for data in (no_face_jpeg(kind), provider_ready(no_face_jpeg(kind))):
        analysis = faces.analyze(Image.open(io.BytesIO(data)))
        assert not analysis.found, kind


def test_registry_photo_without_a_face_is_detected():
    assert not faces.analyze(reference_image(identity("no_face_reference"))).found
    assert reference_image(identity("no_reference_photo")) is None


def test_lookalike_lands_in_the_review_band_however_it_is_encoded():
    data = lookalike_jpeg("face_review")
    assert scenario_selfie_jpeg("face_review") == data
    for version in (data, provider_ready(data), at_quality(data, 50), at_quality(data, 70, 640)):
        assert 40 <= score_of(version, "face_review") < 60


def test_small_face_is_measured_below_128_px():
    probe = faces.analyze(Image.open(io.BytesIO(small_face_jpeg("low_quality_selfie"))))
    assert probe.found and probe.face_px < faces.MIN_FACE_PX
    full = faces.analyze(Image.open(io.BytesIO(provider_ready(selfie_jpeg("match")))))
    assert full.face_px >= 200
