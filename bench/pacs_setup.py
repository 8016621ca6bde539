"""What bench/pacs_roundtrip.py and bench/pacs_drain.py set up before they measure: the portal on
its own PostgreSQL and Redis databases (bench/portal_setup.py) with a random-init Xception version
served as a worker serves it, a live site with one patient, Orthanc (Debian's package) on free
loopback ports naming the portal's listener as a modality and registered as a node that takes
results, `bin/portal dicom-listener`, `bin/portal pacs-worker` (the sends back to Orthanc) and
`bin/portal inference-worker`, as `make run` starts them; and the engine the inference worker runs,
timed in the bench's process while that worker is stopped."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.dicom_listener import free_port  # noqa: E402
from bench.portal_setup import Services, environment, fresh_database_and_queue, register_version, start, stop  # noqa: E402

ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")


def add_arguments(parser, database, redis_db):
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--fp32", action="store_true")
    parser.add_argument("--database", default=database)
    parser.add_argument("--redis-db", type=int, default=redis_db)
    parser.add_argument("--orthanc-nodelay", action="store_true",
                        help="start Orthanc with TCP_NODELAY=1 (DCMTK then turns Nagle off on its side; docs/pacs.md)")


def post(url, body):
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=600) as response:
        return json.loads(response.read() or b"null")


def store_to_portal(orthanc_url, instances, synchronous=True):
    """Orthanc's own store-to-modality call: Orthanc sends the instances to the portal over C-STORE (one association)."""
    return post(f"{orthanc_url}/modalities/portal/store", json.dumps({"Resources": instances, "Synchronous": synchronous}).encode())


def start_orthanc(folder: Path, listener_port: int, nodelay: bool = False):
    http_port, dicom_port = free_port(), free_port()
    configuration = {"Name": "bench", "DicomAet": "ORTHANC_BENCH", "DicomPort": dicom_port, "HttpPort": http_port,
                     "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
                     "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
                     "DicomModalities": {"portal": {"AET": "CXR_BENCH", "Host": "127.0.0.1", "Port": listener_port}}}
    (folder / "orthanc.json").write_text(json.dumps(configuration))
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=(folder / "orthanc.log").open("w"),
                               stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
                               env={**os.environ, **({"TCP_NODELAY": "1"} if nodelay else {})})
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


@dataclass
class Portal:
    folder: Path
    orthanc_url: str
    serving: object
    processes: dict = field(default_factory=dict)  # by bin/portal role, and "orthanc"

    def stop_worker(self):
        """Stop the (idle) inference worker, so the engine is timed alone."""
        stop(self.processes.pop("inference-worker"))


@contextmanager
def portal_with_orthanc(args, batch_size):
    """The running portal and Orthanc (see the module's docstring); everything stopped and removed after."""
    if ORTHANC is None:
        sys.exit("Orthanc is not installed (apt-get install orthanc).")
    folder = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    services = Services(database=args.database, redis_db=args.redis_db, port=free_port())
    listener_port = free_port()
    env = {**environment(folder, batch_size, services), "PORTAL_DICOM_PORT": str(listener_port), "PORTAL_DICOM_AE_TITLE": "CXR_BENCH"}
    os.environ.update(env)
    fresh_database_and_queue(services)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from diagnosis.models import Patient, Site
    from pacs.models import DicomNode
    from portal.bootstrap import create_folders

    create_folders(settings)
    call_command("migrate", verbosity=0)
    serving, _ = register_version(args.size, folder / "artifact", args.fp32)
    site = Site.objects.create(name="Bench", code="bench", mode=Site.Mode.LIVE)
    Patient.objects.create(site=site, medical_record_number="B-1", family_name="Bench", given_name="Film")
    processes = {}
    try:
        processes["orthanc"], orthanc_url, orthanc_dicom_port = start_orthanc(folder, listener_port, args.orthanc_nodelay)
        DicomNode.objects.create(ae_title="ORTHANC_BENCH", host="127.0.0.1", port=orthanc_dicom_port, site=site, receives_results=True)
        # The listener says it is ready at INFO; the bench's environment logs warnings only.
        processes["dicom-listener"] = start("dicom-listener", {**env, "PORTAL_LOG_LEVEL": "INFO"}, folder / "dicom-listener.log")
        for worker in ("pacs-worker", "inference-worker"):
            processes[worker] = start(worker, env, folder / f"{worker}.log")
        wait_for_log(folder / "dicom-listener.log", "DICOM listener ready", processes["dicom-listener"], "The listener")
        for worker in ("pacs-worker", "inference-worker"):
            wait_for_log(folder / f"{worker}.log", " ready.", processes[worker], f"The {worker}")
        yield Portal(folder, orthanc_url, serving, processes)
    finally:
        for process in reversed(processes.values()):
            stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def engine_ms(serving, batch, repeats=15):
    """(median ms of one forward pass of `batch` films, "runtime precision") of the engine the worker runs."""
    from ml import runtime
    from ml.engine.data.synthetic import make_chest_image
    import numpy as np

    engine = runtime.load_predictor(serving.version, serving)
    rng = np.random.default_rng(1)
    prepared = [engine.prepare(make_chest_image(rng, 1024, opacities=True)) for _ in range(batch)]
    engine.forward_prepared(prepared)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.forward_prepared(prepared)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), f"{engine.runtime} {engine.precision}"
