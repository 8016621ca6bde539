"""Two inference workers on this machine, as separate processes with separate data folders and the
files in an object store, draining a standing backlog (issue 21's target: at least 0.90 of the
engine's batch rate for the two workers' share of the cores).

    nice .venv/bin/python bench/two_workers.py [--quick] [--backlog N] [--json FILE]
        [--database NAME] [--redis-db N] [--port PORT]

What bench/portal_e2e.py does for one worker, with its helpers (bench/portal_setup.py,
bench/portal_results.py, bench/baselines.py): its own PostgreSQL and Redis databases, a random-init
Xception version with its serving export, a real web server (`bin/portal web`) and a SeaweedFS
(`weed server -s3`, tests/seaweedfs.py) on this machine holding films, heatmaps and the model. The
backlog is uploaded over HTTP (4 client threads) while no worker runs; then two `bin/portal
inference-worker` processes start, each with a data folder of its own (the model reaches it through
the bucket, into its own cache), each pinned to one core with taskset (so each runs its engine on
one thread: the cores split one each; the web server, the store and the bench are not pinned).
Rate: the scans of every model call after the first two to finish (by then each worker has
finished one call, start-up included), over the time from the end of the second call to the last
result (the database's finished_at stamps). The baseline: the engine both run (the same export and
precision) at batch 16 in the bench's own process on both cores, i.e. the two workers' share,
timed just before the uploads and just after the drain while no scan is analysed."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.portal_e2e import BACKLOG_POLL  # noqa: E402
from bench.portal_results import call_sizes, counted_after, predict_ms_per_scan, wait_until_finished, worker_calls  # noqa: E402
from bench.portal_setup import (Client, Services, add_service_arguments, clinician_and_patient, environment,  # noqa: E402
                                fresh_database_and_queue, register_version, scan_files, services_from, start, stop)

CORES = ("0", "1")  # one each: the two workers' share is this machine's two cores


def worker_environment(env: dict, folder: Path) -> dict:
    """A worker 'host': the same services, a data folder of its own, created as `bin/portal setup` creates one."""
    own = {**env, "PORTAL_DATA_DIR": str(folder)}
    subprocess.run([sys.executable, "-m", "portal.bootstrap"], cwd=ROOT, env={**os.environ, **own}, check=True)
    return own


def drain(ids: list, env: dict, work: Path, logs: Path, processes: list) -> dict:
    for number, cores in enumerate(CORES, start=1):
        processes.append(start("inference-worker", worker_environment(env, work / f"worker-{number}"), logs / f"worker-{number}.log", cores))
    wait_until_finished(ids, 120 + 10 * len(ids), every=BACKLOG_POLL)
    calls = worker_calls(ids)
    if len(calls) < 4:
        raise SystemExit(f"The backlog of {len(ids)} took {len(calls)} model calls: give one of several batches per worker")
    counted, seconds, _ = counted_after(ids, 2, calls)
    cached = {number: sorted(str(path.relative_to(work / f"worker-{number}")) for path in (work / f"worker-{number}").rglob("*.xml"))
              for number in (1, 2)}
    return {"scans_per_s": len(counted) / seconds, "seconds": seconds, "counted": len(counted), "calls": call_sizes(calls),
            "predict_ms_per_scan": predict_ms_per_scan(counted), "exports_cached_per_worker": cached}


def run(size: int, backlog: int, batch_size: int, logs: Path, services: Services) -> dict:
    from tests.seaweedfs import WEED_ABSENT, SeaweedFS, weed_binary

    if weed_binary() is None:
        raise SystemExit(WEED_ABSENT)
    work = Path(tempfile.mkdtemp(prefix="bench-two-workers-"))
    store = SeaweedFS(work / "seaweedfs").start()
    processes = []
    try:
        env = {**environment(work / "web", batch_size, services), **store.environment()}
        os.environ.update(env)
        fresh_database_and_queue(services)
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from bench.baselines import Baselines
        from diagnosis.models import Prediction, Scan
        from ml.engine.serve.serving import cpu_description
        from portal.bootstrap import create_folders

        create_folders(settings)
        call_command("migrate", verbosity=0)
        serving, model = register_version(size, work / "artifact", fp32=False)
        patient = clinician_and_patient()
        files = scan_files(backlog)
        processes.append(start("web", env, logs / "web.log"))
        client = Client(patient.pk, services.port)
        baselines = Baselines(serving, model, files[:16], work)
        baselines.measure()
        load_before = os.getloadavg()[0]
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(client.upload, files))
        drained = drain(ids, env, work, logs, processes)
        for process in processes[1:]:
            stop(process)  # idle: the baseline after the drain gets the cores
        baselines.measure()
        report = {"cpu": cpu_description(), "image_size": size, "backlog": backlog, "batch_size": batch_size,
                  "runtime": f"{serving.runtime} {serving.precision}", "precision_note": serving.reason, "cores": "worker 1: core 0, worker 2: core 1 (taskset)",
                  "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "drain": drained,
                  "baselines": baselines.report(), "failed": Scan.objects.filter(status="failed").count(),
                  "predictions": Prediction.objects.filter(scan__in=ids).count(), "keys_in_bucket": len(store.keys("scans/"))}
        report["drain_to_engine"] = drained["scans_per_s"] / report["baselines"]["engine_images_per_s"]
        return report
    finally:
        for process in reversed(processes):
            stop(process)
        store.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    defaults = Services(database="portal_bench_two_workers", redis_db=11, port=8766)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="71 px, a backlog of 64: checks the script")
    parser.add_argument("--backlog", type=int, help="scans drained (default 224: seven calls of 16 per worker)")
    parser.add_argument("--batch-size", type=int, default=16, help="PORTAL_INFERENCE_BATCH_SIZE (default 16)")
    add_service_arguments(parser, defaults)
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "bench-two-workers-logs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = run(71 if args.quick else 299, args.backlog or (64 if args.quick else 224), args.batch_size, args.logs,
                 services_from(args))
    report["bench_s"] = time.perf_counter() - started
    print(json.dumps(report, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
