"""A lone study from a real Orthanc's C-STORE to its SR stored back in that Orthanc, against the
engine's own batch-1 forward pass measured in the same run.

    nice .venv/bin/python bench/pacs_roundtrip.py [--studies 12] [--size 299] [--fp32]
        [--database NAME] [--redis-db N]

Its own PostgreSQL and Redis databases (bench/portal_setup.py: `portal_bench_pacs` and 11 unless
told), a random-init Xception version served as a worker serves it (bf16 forced where the CPU has
it, as bench/portal_e2e.py explains; --fp32 keeps fp32), Orthanc (Debian's package) on free
loopback ports naming the portal's listener as a modality, `bin/portal dicom-listener` and
`bin/portal inference-worker`. Each study is one 1024 x 1024 12-bit CR film: uploaded to Orthanc
(not timed), then timed from Orthanc's store-to-modality call to the moment Orthanc confirmed the
SR's C-STORE (ResultSend.sr_sent_at, polled every 10 ms), one study at a time; the first is a
warm-up (the worker's model load, imports). Then, with the worker idle, the engine the worker runs
(same export and precision) timed at batch 1 in this process. Target (issue 20): p50 at most the
engine's batch-1 time + 500 ms.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.dicom_listener import film, free_port  # noqa: E402
from bench.portal_setup import Services, environment, fresh_database_and_queue, register_version, start, stop  # noqa: E402

ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
TARGET_EXTRA_MS = 500.0


def post(url, body):
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=120) as response:
        return json.loads(response.read() or b"null")


def start_orthanc(folder: Path, listener_port: int):
    http_port, dicom_port = free_port(), free_port()
    configuration = {"Name": "bench", "DicomAet": "ORTHANC_BENCH", "DicomPort": dicom_port, "HttpPort": http_port,
                     "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
                     "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
                     "DicomModalities": {"portal": {"AET": "CXR_BENCH", "Host": "127.0.0.1", "Port": listener_port}}}
    (folder / "orthanc.json").write_text(json.dumps(configuration))
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=(folder / "orthanc.log").open("w"),
                               stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/system", timeout=1)
            return process, url, dicom_port
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"Orthanc did not start:\n{(folder / 'orthanc.log').read_text()[-2000:]}")


def wait_for_log(path: Path, mark: str, process, what: str, timeout=180):
    deadline = time.monotonic() + timeout
    while mark not in path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start:\n{path.read_text()[-2000:]}")
        time.sleep(0.2)


def engine_batch_1_ms(serving, repeats=15):
    from ml import runtime
    from ml.engine.data.synthetic import make_chest_image
    import numpy as np

    engine = runtime.load_predictor(serving.version, serving)
    prepared = [engine.prepare(make_chest_image(np.random.default_rng(1), 1024, opacities=True))]
    engine.forward_prepared(prepared)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.forward_prepared(prepared)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), f"{engine.runtime} {engine.precision}"


def main():
    if ORTHANC is None:
        sys.exit("Orthanc is not installed (apt-get install orthanc).")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=12)
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--fp32", action="store_true")
    parser.add_argument("--database", default="portal_bench_pacs")
    parser.add_argument("--redis-db", type=int, default=11)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    services = Services(database=args.database, redis_db=args.redis_db, port=free_port())
    listener_port = free_port()
    env = {**environment(folder, 1, services), "PORTAL_DICOM_PORT": str(listener_port), "PORTAL_DICOM_AE_TITLE": "CXR_BENCH"}
    os.environ.update(env)
    fresh_database_and_queue(services)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from diagnosis.models import Patient, Site
    from pacs.models import DicomNode, ResultSend
    from portal.bootstrap import create_folders

    create_folders(settings)
    call_command("migrate", verbosity=0)
    serving, _ = register_version(args.size, folder / "artifact", args.fp32)
    site = Site.objects.create(name="Bench", code="bench", mode=Site.Mode.LIVE)
    Patient.objects.create(site=site, medical_record_number="B-1", family_name="Bench", given_name="Film")
    processes = []
    try:
        orthanc, orthanc_url, orthanc_dicom_port = start_orthanc(folder, listener_port)
        processes.append(orthanc)
        DicomNode.objects.create(ae_title="ORTHANC_BENCH", host="127.0.0.1", port=orthanc_dicom_port, site=site, receives_results=True)
        # The listener says it is ready at INFO; the bench's environment logs warnings only.
        processes.append(start("dicom-listener", {**env, "PORTAL_LOG_LEVEL": "INFO"}, folder / "dicom-listener.log"))
        processes.append(start("inference-worker", env, folder / "inference-worker.log"))
        wait_for_log(folder / "dicom-listener.log", "DICOM listener ready", processes[-2], "The listener")
        wait_for_log(folder / "inference-worker.log", " ready.", processes[-1], "The worker")
        latencies = []
        for seed in range(args.studies + 1):
            instance = post(f"{orthanc_url}/instances", film(1024, seed, "B-1"))["ID"]
            started = time.time()
            post(f"{orthanc_url}/modalities/portal/store", json.dumps({"Resources": [instance], "Synchronous": True}).encode())
            deadline = time.monotonic() + 300
            while ResultSend.objects.filter(sr_sent_at__isnull=False).count() <= seed:
                if time.monotonic() > deadline:
                    raise SystemExit(f"study {seed}: no SR in Orthanc after 300 s; see {folder}")
                time.sleep(0.01)
            newest = ResultSend.objects.order_by("-sr_sent_at").first()
            if seed:  # the first is the warm-up
                latencies.append(1000 * (newest.sr_sent_at.timestamp() - started))
        stop(processes.pop())  # the worker, idle: the engine is timed alone
        engine_ms, runtime = engine_batch_1_ms(serving)
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(folder, ignore_errors=True)
    p50 = statistics.median(latencies)
    print(f"{args.studies} lone studies (1024 x 1024 12-bit CR), {args.size} px Xception, {runtime}, on {os.cpu_count()} CPUs")
    print(f"C-STORE from Orthanc to the SR stored in Orthanc: p50 {p50:.0f} ms, min {min(latencies):.0f}, max {max(latencies):.0f}")
    print(f"engine batch-1 forward pass (same run, worker idle): {engine_ms:.0f} ms")
    extra = p50 - engine_ms
    print(f"p50 beside the engine: {extra:+.0f} ms (target at most +{TARGET_EXTRA_MS:.0f} ms): {'met' if extra <= TARGET_EXTRA_MS else 'missed'}")


if __name__ == "__main__":
    main()
