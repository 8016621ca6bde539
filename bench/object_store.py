"""The per-scan path with the files in a SeaweedFS bucket against the same path on local folders,
timed in turn in one run (target: at most 1.10x).

    nice .venv/bin/python bench/object_store.py            # Xception 299 px, 1024 px films, medians of 15
    nice .venv/bin/python bench/object_store.py --quick    # 71 px, medians of 5: a smoke run

One scan's path, with the portal's own functions (diagnosis.storage, diagnosis.inference) and a
random-init Xception served as a worker serves it (OpenVINO fp32 export): the web process decodes
the upload and stores it (and, on local folders only, leaves the decoded copy for the worker); the
worker reads the film (the decoded copy, else the stored film decoded), prepares it, runs one
forward pass, draws and stores the heatmap; the web process then serves the film (decoded, as PNG)
and the heatmap. The store is a `weed server -s3` on loopback (tests/seaweedfs.py), on the same
machine as everything else, as the issue's target asks. No database is touched."""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    size, repeats = (71, args.repeats or 5) if args.quick else (299, args.repeats or 15)
    work = Path(tempfile.mkdtemp(prefix="bench-object-store-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="portal.settings.local", DJANGO_SECRET_KEY="bench-only", PORTAL_DATA_DIR=str(work / "data"),
                      TF_CPP_MIN_LOG_LEVEL="2")
    for variable in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[variable]  # the local baseline is the default; the bucket is switched on below
    import django

    django.setup()
    from django.conf import settings
    from django.core.files.storage import storages
    from django.test.utils import override_settings

    from bench.baselines import paired_medians
    from bench.portal_setup import scan_files
    from ml.engine.serve.serving import cpu_description
    from portal import bootstrap
    from tests.seaweedfs import WEED_ABSENT, SeaweedFS, weed_binary

    if weed_binary() is None:
        raise SystemExit(WEED_ABSENT)
    bootstrap.create_folders(settings)
    predictor = serving_predictor(size, work / "model")
    film = scan_files(1)[0]
    store = SeaweedFS(work / "seaweedfs").start()
    try:
        load_before = os.getloadavg()[0]
        # Each backend's storages made once, as a process keeps them (a new S3 client per scan would time boto3's start-up).
        local = {alias: storages[alias] for alias in ("scans", "models")}
        with override_settings(**store.settings()):
            bucket = {alias: storages.create_storage(settings.STORAGES[alias]) for alias in ("scans", "models")}
        stored = []  # (backend, names): removed after the timing, which is the scan's path and not the bench's clean-up
        on = lambda backend: lambda: (storages._storages.update(backend), stored.append((backend, one_scan(film, predictor))))  # noqa: E731
        local_seconds, bucket_seconds = paired_medians(on(local), on(bucket), repeats)
        remove(stored)
        parts = {"local": part_times(film, predictor, local, repeats), "seaweedfs": part_times(film, predictor, bucket, repeats)}
    finally:
        store.stop()
    report = {
        "cpu": cpu_description(), "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "image_size": size, "film": "1024 px PNG", "repeats": repeats, "runtime": predictor.runtime, "precision": predictor.precision,
        "per_scan_ms": {"local_folders": round(local_seconds * 1000, 1), "seaweedfs": round(bucket_seconds * 1000, 1)},
        "ratio_seaweedfs_to_local": round(bucket_seconds / local_seconds, 3), "target": "<= 1.10",
        "parts_ms": parts,
    }
    print(json.dumps(report, indent=2))


def serving_predictor(size, folder):
    """A random-init Xception exported to OpenVINO and loaded as a worker loads an accepted export."""
    import keras

    from ml.engine import PreprocessingSpec, build_model, export_serving_model, save_artifact
    from ml.engine.serve.serving import load_serving_predictor

    keras.utils.set_random_seed(0)
    spec = PreprocessingSpec.for_backbone("xception", size)
    record = {"backbone": "xception", "preprocessing": spec.to_dict(), "class_names": ["covid", "normal"], "positive_class": "covid",
              "threshold": 0.5, "synthetic": True}
    artifact, record = save_artifact(build_model("xception", 2, size, weights=None), folder, record)
    export_serving_model(artifact, folder / "export", expected_sha256=record["sha256"])
    accepted = {"accepted": True, "precision": "fp32", "reason": "bench: random weights, speed only"}
    return load_serving_predictor(artifact, export_dir=folder / "export", validation=accepted, expected_sha256=record["sha256"])


def upload(film):
    """The web process: decode the upload completely, store it, leave the decoded copy (local folders only)."""
    from diagnosis import storage
    from ml.engine import decode_image_bytes

    decoded = decode_image_bytes(film)
    name = storage.write(film, "png")
    storage.keep_decoded(name, decoded.pixels)
    return name


def analyse(name, predictor):
    """The worker: read the film, one forward pass, store the heatmap."""
    from diagnosis import storage
    from diagnosis.inference import grey_png

    pixels = storage.take_decoded(name)
    if pixels is None:
        pixels = storage.load_pixels(name)
    prepared = predictor.prepare(pixels)
    (result,) = predictor.interpret([prepared], predictor.forward_prepared([prepared]))
    return storage.write(grey_png(result["heatmap"]), "png")


def serve(name, heatmap):
    """The web process serves the film (decoded, as PNG: diagnosis.scan_views.scan_image) and the heatmap."""
    from PIL import Image

    from diagnosis import storage

    Image.fromarray(storage.load_pixels(name)).save(io.BytesIO(), format="PNG")
    return storage.read(heatmap)


def one_scan(film, predictor):
    """Store, analyse, serve: what one scan costs. Its files are removed later, untimed (the portal
    never deletes a film on a scan's path; two DELETEs were 15-20 ms of the bucket's share)."""
    name = upload(film)
    heatmap = analyse(name, predictor)
    serve(name, heatmap)
    return name, heatmap


def remove(stored):
    """The run keeps nothing: every file the timed scans stored, deleted from its own backend."""
    from django.core.files.storage import storages

    from diagnosis import storage

    for backend, names in stored:
        storages._storages.update(backend)
        for name in names:
            storage.delete(name)


def part_times(film, predictor, backend, repeats):
    """Median ms of each step, to see where a difference comes from."""
    import statistics

    from django.core.files.storage import storages

    storages._storages.update(backend)
    steps = {"upload": [], "worker": [], "serve": []}
    for _ in range(repeats):
        started = time.perf_counter()
        name = upload(film)
        stored = time.perf_counter()
        heatmap = analyse(name, predictor)
        analysed = time.perf_counter()
        serve(name, heatmap)
        served = time.perf_counter()
        steps["upload"].append(stored - started)
        steps["worker"].append(analysed - stored)
        steps["serve"].append(served - analysed)
    return {step: round(statistics.median(values) * 1000, 1) for step, values in steps.items()}


if __name__ == "__main__":
    main()
