"""Benchmark 3: a 12 MP phone JPEG to a provider-ready image, against a naive Pillow loop.

Both run in the same process, interleaved (naive, prepared, naive, ...) so machine noise hits both.
Peak memory is measured in fresh subprocesses: the peak resident set (VmHWM) after one run minus the
peak before it (after imports and after the input bytes are in memory), i.e. the extra resident
memory the conversion needed. (`ru_maxrss` is not used: Linux carries it over from the parent
across fork/exec, and the parent has just generated a 12 MP image.) tracemalloc alone would miss it:
Pillow allocates image memory with malloc, outside Python's allocator; its Python-side peak is
reported too, for completeness. The hostile battery of tests/unit/test_image_memory.py (decompression
bombs, huge declared sizes, many frames, 16-bit, CMYK, progressive JPEG) is run once, each image in a
fresh process: its largest absolute peak RSS is the figure held to 256 MB.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import imagegen
from bench.stats import median, summary

ROOT = Path(__file__).resolve().parent.parent


def naive(raw: bytes) -> bytes:
    """What a user would write: open, convert, thumbnail to 800 px, save at quality 85."""
    from PIL import Image

    img = Image.open(io.BytesIO(raw))
    img = img.convert("RGB")
    img.thumbnail((800, 800))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def prepared(raw: bytes) -> bytes:
    from idv import images

    return images.prepare_image(raw, images.JUHE).jpeg


METHODS = {"naive": naive, "prepare_image": prepared}


def _peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(method: str, path: str) -> None:
    """Subprocess entry: one conversion, print the memory figures as JSON."""
    import tracemalloc

    import PIL.Image
    import PIL.JpegImagePlugin  # noqa: F401

    from idv import images  # noqa: F401

    raw = Path(path).read_bytes()
    before = _peak_rss_kb()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = METHODS[method](raw)
    seconds = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = _peak_rss_kb()
    print(
        json.dumps(
            {
                "rss_peak_delta_kb": after - before,
                "tracemalloc_peak_kb": py_peak // 1024,
                "seconds": seconds,
                "bytes": len(out),
            }
        )
    )


def _memory(method: str, path: Path, runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'idv'}{os.pathsep}{ROOT}"}
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "bench.image_pipeline", method, str(path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "rss_peak_delta_mb": round(median([s["rss_peak_delta_kb"] for s in samples]) / 1024, 1),
        "tracemalloc_peak_mb": round(median([s["tracemalloc_peak_kb"] for s in samples]) / 1024, 2),
        "first_run_ms": round(median([s["seconds"] for s in samples]) * 1000, 1),
        "runs": runs,
    }


def _decode_floor(raw: bytes, repeats: int) -> dict[str, float]:
    """Decoding alone, no resize or encode: in full, and DCT-scaled to 1/4 (what prepare_image uses
    for this photo) and 1/8 (DC coefficients only). Entropy decoding of the whole file is paid at
    every scale: it is the floor of any Pillow pipeline on this input."""
    from PIL import Image

    def decode(scale: int) -> None:
        img = Image.open(io.BytesIO(raw))
        if scale > 1:
            img.draft("RGB", (img.width // scale, img.height // scale))
        img.load()

    out = {}
    for scale in (1, 4, 8):
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            decode(scale)
            samples.append(time.perf_counter() - t0)
        out["full" if scale == 1 else f"1/{scale}"] = round(median(samples) * 1000, 1)
    return out


def hostile_battery() -> dict[str, Any]:
    """Peak RSS (VmHWM, whole process, MB) of prepare_image on each hostile image, and the outcome."""
    from tests.unit import test_image_memory as battery

    items = {}
    for name, (build, _expected) in battery.BATTERY.items():
        got = battery.run_in_child(build())
        items[name] = {"peak_rss_mb": round(got["peak_kb"] / 1024, 1), "outcome": got["outcome"]}
    worst = max(items, key=lambda name: items[name]["peak_rss_mb"])
    return {
        "max_peak_rss_mb": items[worst]["peak_rss_mb"],
        "worst": worst,
        "limit_mb": battery.PEAK_RSS_LIMIT_KB // 1024,
        "untyped_errors": sorted(name for name, item in items.items() if item["outcome"] == "untyped"),
        "items": items,
    }


def run(repeats: int = 15, memory_runs: int = 3, workdir: Path | None = None) -> dict[str, Any]:
    from PIL import Image

    from idv import images

    raw = imagegen.phone_jpeg()
    source = Image.open(io.BytesIO(raw))
    info = {"bytes": len(raw), "size": list(source.size), "exif_orientation": source.getexif().get(0x0112)}

    # Warm-up (imports, Pillow's lazy plugin registry, first-run allocator growth).
    naive(raw)
    result = images.prepare_image(raw, images.JUHE)
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    outputs: dict[str, bytes] = {}
    for _ in range(repeats):
        for name, fn in METHODS.items():
            t0 = time.perf_counter()
            outputs[name] = fn(raw)
            times[name].append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(workdir or tmp) / "bench-phone.jpg"
        path.write_bytes(raw)
        memory = {name: _memory(name, path, memory_runs) for name in METHODS}

    floor = _decode_floor(raw, repeats)
    hostile = hostile_battery()
    out_img = {name: Image.open(io.BytesIO(data)) for name, data in outputs.items()}
    t_naive, t_prep = median(times["naive"]), median(times["prepare_image"])
    return {
        "input": info,
        "repeats": repeats,
        "naive_ms": summary(times["naive"], 1000, 1),
        "prepare_image_ms": summary(times["prepare_image"], 1000, 1),
        "speedup": round(t_naive / t_prep, 2),
        "memory": memory,
        "output": {name: {"bytes": len(data), "size": list(out_img[name].size)} for name, data in outputs.items()},
        "prepare_image_quality": result.quality,
        "decode_only_ms": floor,
        "juhe_window": [images.JUHE.min_bytes, images.JUHE.max_bytes, images.JUHE.hard_max_bytes],
        "hostile_battery": hostile,
        "targets": {
            "speedup_ge_3x": t_naive / t_prep >= 3,
            "p50_le_60ms": t_prep * 1000 <= 60,
            "output_in_window": images.JUHE.min_bytes <= len(outputs["prepare_image"]) <= images.JUHE.max_bytes,
            "output_le_hard_max": len(outputs["prepare_image"]) <= images.JUHE.hard_max_bytes,
            "hostile_peak_rss_le_256mb": hostile["max_peak_rss_mb"] <= hostile["limit_mb"]
            and not hostile["untyped_errors"],
        },
    }


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _child(sys.argv[1], sys.argv[2])
    else:
        print(json.dumps(run(), indent=2))
