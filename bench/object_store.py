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
machine as everything else, as the issue's target asks. No database is touched.

Where a difference comes from is reported from the timed scans themselves: each step's median per
backend ("parts_ms"); the store's share, those steps' differences summed without the forward pass
("store_share_ms", which the forward pass's drift does not blur as it blurs the ratio); and every
S3 request the bucket's scans sent, counted per scan and timed in boto3 from the call's parameters
to the parsed answer (a GetObject's body is read after that, in the step). The clock's hooks cost
a few microseconds a request, on the bucket's side only."""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
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
        steps = {"local": StepClock(), "seaweedfs": StepClock()}
        requests = RequestClock([storage.connection.meta.client for storage in bucket.values()])

        def on(backend, label):
            def scan():
                storages._storages.update(backend)
                stored.append((backend, one_scan(film, predictor, steps[label])))
            return scan

        local_seconds, bucket_seconds = paired_medians(on(local, "local"), on(bucket, "seaweedfs"), repeats)
        requests.stop()
        remove(stored)
    finally:
        store.stop()
    scans = repeats + 1  # the warm-up's scan sent its requests too
    report = {
        "cpu": cpu_description(), "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "image_size": size, "film": f"1024 px PNG, {len(film) // 1000} kB", "repeats": repeats, "runtime": predictor.runtime,
        "precision": predictor.precision,
        "per_scan_ms": {"local_folders": round(local_seconds * 1000, 1), "seaweedfs": round(bucket_seconds * 1000, 1)},
        "ratio_seaweedfs_to_local": round(bucket_seconds / local_seconds, 3), "target": "<= 1.10",
        "parts_ms": {label: clock.medians_ms() for label, clock in steps.items()},
        "store_share_ms": store_share_ms(steps["local"].medians_ms(), steps["seaweedfs"].medians_ms()),
        "s3_requests_per_scan": requests.per_scan(scans),
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


def read_film(name):
    """The worker reads the film: the decoded copy the upload left, else the stored film decoded."""
    from diagnosis import storage

    pixels = storage.take_decoded(name)
    return storage.load_pixels(name) if pixels is None else pixels


def heatmap_png(pixels, predictor):
    """The worker's own work, the same on both backends: prepare, one forward pass, draw the heatmap."""
    from diagnosis.inference import grey_png

    prepared = predictor.prepare(pixels)
    (result,) = predictor.interpret([prepared], predictor.forward_prepared([prepared]))
    return grey_png(result["heatmap"])


def serve_film(name):
    """The web process serves the film decoded, as PNG (diagnosis.scan_views.scan_image)."""
    from PIL import Image

    from diagnosis import storage

    Image.fromarray(storage.load_pixels(name)).save(io.BytesIO(), format="PNG")


def one_scan(film, predictor, clock):
    """Store, analyse, serve: what one scan costs, step by step. Its files are removed later,
    untimed (the portal never deletes a film on a scan's path; two DELETEs were 15-20 ms of the
    bucket's share)."""
    from diagnosis import storage

    name = clock.step("web: decode and store the upload", upload, film)
    pixels = clock.step("worker: read the film", read_film, name)
    png = clock.step(FORWARD_PASS, heatmap_png, pixels, predictor)
    heatmap = clock.step("worker: store the heatmap", storage.write, png, "png")
    clock.step("web: serve the film as PNG", serve_film, name)
    clock.step("web: serve the heatmap", storage.read, heatmap)
    return name, heatmap


def remove(stored):
    """The run keeps nothing: every file the timed scans stored, deleted from its own backend."""
    from django.core.files.storage import storages

    from diagnosis import storage

    for backend, names in stored:
        storages._storages.update(backend)
        for name in names:
            storage.delete(name)


FORWARD_PASS = "worker: prepare, forward pass, heatmap"


def store_share_ms(local, bucket):
    """What the bucket adds to a scan: each step's difference of medians, the forward pass left out."""
    return round(sum(bucket[step] - local[step] for step in local if step != FORWARD_PASS), 1)


class StepClock:
    """Each step's seconds over the scans of one backend."""

    def __init__(self):
        self.seconds = {}

    def step(self, label, function, *args):
        started = time.perf_counter()
        result = function(*args)
        self.seconds.setdefault(label, []).append(time.perf_counter() - started)
        return result

    def medians_ms(self):
        return {label: round(statistics.median(values) * 1000, 1) for label, values in self.seconds.items()}


class RequestClock:
    """Every S3 operation the given boto3 clients call, with its time from botocore's first event
    (provide-client-params) to after-call: parameters checked, request built and signed, sent,
    the answer's headers parsed."""

    def __init__(self, clients):
        self.clients = clients
        self.seconds = {}
        self.started = {}
        for client in clients:
            client.meta.events.register("provide-client-params.s3", self.before)
            client.meta.events.register("after-call.s3", self.after)

    def before(self, model, **_):
        self.started[model.name] = time.perf_counter()  # returns None: the call's parameters stay as they are

    def after(self, model, **_):
        self.seconds.setdefault(model.name, []).append(time.perf_counter() - self.started.pop(model.name))

    def stop(self):
        for client in self.clients:
            client.meta.events.unregister("provide-client-params.s3", self.before)
            client.meta.events.unregister("after-call.s3", self.after)

    def per_scan(self, scans):
        return {operation: {"count": round(len(values) / scans, 2), "median_ms": round(statistics.median(values) * 1000, 2)}
                for operation, values in self.seconds.items()}


if __name__ == "__main__":
    main()
