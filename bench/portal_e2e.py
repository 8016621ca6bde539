"""The portal end to end: HTTP upload, the inference worker, the result, on PostgreSQL + Redis.

    nice .venv/bin/python bench/portal_e2e.py [--quick] [--fp32 | --int8] [--json FILE]
        [--artifact model.keras [--int8 --keep-fp32 block2,block14] [--silent-films N]]
        [--database NAME] [--redis-db N] [--port PORT]   # two runs on one machine need their own
    (bench/inference.py runs it and sets its figures against the engine and the original path)

It makes its own database (`portal_bench_e2e` unless --database; dropped first) and uses its own
Redis database (12 unless --redis-db; flushed), registers a random-init Xception version (speed
does not depend on the weights) with its serving export, starts a real web server (`bin/portal
web`, gunicorn) and a real inference worker (`bin/portal inference-worker`, one at a time),
takes an API token and then measures:
- the first scan after the worker starts: one scan uploaded before the worker process is
  spawned, seconds from spawning the process to its result;
- lone scans, one at a time (upload, wait for its result, next): upload-to-result p50 and p95;
- a standing backlog drained: the worker is stopped, N scans are uploaded over HTTP by 4 client
  threads (they wait in Redis), then a fresh worker is started. Scans/s over the worker's calls
  after its first: the scans they answered over the time from the last result of the first call
  to the last result of all (the database's finished_at stamps). The uploads, the worker's
  start-up and its first call are left out: what the worker alone sustains under a backlog;
- a backlog with the uploads racing the worker: N more scans uploaded by 4 client threads as
  fast as the server takes them while that worker runs, scans/s from the first upload to the
  last result. On a 2-core machine the web server's work (gunicorn, decoding to validate,
  inserts) competes with the worker for the cores, so this figure includes it;
- the baselines of the ratios, just before and just after the drain while no scan is analysed:
  the engine the worker runs (its export and precision) at batch 16 and the original project's
  request, timed in turn in this process.
For both backlogs, the Prediction rows give each scan's share of the model call the worker times
(`inference_ms`: the forward pass alone) and the rest of the time per scan is "everything else"
(preparing the films, reading the outputs, heatmaps, the database: between passes).
Precision: a real version is served in bf16 where its export passed the check against Keras on its
labelled images and the CPU computes bf16 natively (AMX, AVX512-BF16). The random weights here
have no labelled images, so that check cannot pass them; on such a CPU this bench forces bf16 (it
says so; `--fp32` keeps fp32), to measure the portal at the precision a validated model would get.
`--int8` serves instead an int8 version derived from it as an administrator derives one (its own
version, promoted), quantised on generated films and forced past the check in the same way: the
portal at the speed an int8 version that passed its check would get. The real validation
(ml/engine/serve/export.py and int8.py, ml/services/derivation.py) is untouched.
`--artifact model.keras` measures a model trained by bench/train_cxr.py instead (issue 26): it is
registered and its serving export checked for real; with `--int8 [--keep-fp32 blocks]` its int8
version is derived through the unchanged check (a refusal ends the bench with its sentence). A
reduced precision serves a site only after the site's own check (diagnosis.site_precision), so the
bench's site first has a silent period of `--silent-films` of the model's test films, read in fp32,
then that check; the report says what it found and which runtime and precision made each backlog's
predictions.
A lone or first scan's result is seen by polling the database every 10 ms (polling the API would
load the 2 cores the worker needs); a backlog's times come from the scans' finished_at stamps
(written by the worker, committed a few ms later with the rest of their batch), so the bench
polls it only once a second and leaves the cores to the worker. Scans are 1024 x 1024 grey PNGs,
each different. Every process it starts is stopped at the end, whatever happens, and its data
folder removed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.portal_results import call_sizes, counted_after, last_result, percentile, predict_ms_per_scan, wait_until_finished, worker_calls  # noqa: E402
from bench.portal_setup import (FORCED_BF16, FORCED_INT8, Client, Services, add_service_arguments, clinician_and_patient,  # noqa: E402
                                environment, fresh_database_and_queue, register_trained_version, register_version, scan_files,
                                services_from, start, stop)

# A backlog's times come from the database's finished_at stamps, so its end need not be seen at
# once: polling a 200-scan query every 10 ms took about a fifth of a core (2.4 ms of Python a poll).
# Every 250 ms it still took 1.4 ms of Python and 2 ms in all a poll (EPYC), about 1% of a core,
# which work beside the pass costs it twice over (docs/engine.md): once a second is a quarter of that.
BACKLOG_POLL = 1.0


def racing_backlog(client, files: list[bytes]) -> dict:
    """N scans uploaded by 4 client threads while the worker runs: scans/s from the first upload
    to the last result. The uploads (gunicorn, decoding to validate, inserts) share the 2 cores
    with the worker, so this mixes the web server's cost into the worker's rate."""
    started = time.time()  # wall clock, as the finished_at stamps
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(client.upload, files))
    uploaded = time.time()
    wait_until_finished(ids, 60 + 10 * len(files), every=BACKLOG_POLL)
    seconds = last_result(ids).timestamp() - started
    predict_ms = predict_ms_per_scan(ids)
    return {"scans_per_s": len(files) / seconds, "seconds": seconds, "upload_s": uploaded - started,
            "calls": call_sizes(worker_calls(ids)), "predict_ms_per_scan": predict_ms,
            "outside_ms_per_scan": 1000 * seconds / len(files) - predict_ms, "ids": ids}


def drained_backlog(client, files: list[bytes], env: dict, logs: Path, processes: list) -> dict:
    """N scans uploaded while no inference worker runs (they wait in Redis), then a fresh worker
    drains them. The rate counts the scans of its second call to its last, over the time from
    the last result of its first call to the last result of all (the database's finished_at
    stamps): neither the uploads nor the worker's start-up nor its first call are in it."""
    uploaded_from = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(client.upload, files))
    upload_s = time.perf_counter() - uploaded_from
    spawned = time.time()  # wall clock, as the finished_at stamps
    processes.append(start("inference-worker", env, logs / "drain-worker.log"))
    wait_until_finished(ids, 120 + 10 * len(files), every=BACKLOG_POLL)
    calls = worker_calls(ids)
    if len(calls) < 2:
        raise SystemExit(f"The backlog of {len(files)} was drained in one call: give a backlog larger than the batch size")
    counted, seconds, first_call_done = counted_after(ids, 1, calls)
    predict_ms = predict_ms_per_scan(counted)
    return {"scans_per_s": len(counted) / seconds, "seconds": seconds, "counted": len(counted), "upload_s": upload_s,
            "first_call_scans": len(calls[0]), "first_call_done_s": first_call_done.timestamp() - spawned,
            "calls": call_sizes(calls), "predict_ms_per_scan": predict_ms,
            "outside_ms_per_scan": 1000 * seconds / len(counted) - predict_ms, "ids": ids}


def silent_period_checked(client, artifact: Path, n_films: int) -> dict:
    """A reduced precision serves a site only once it held against Keras on that site's own films
    (diagnosis.site_precision), so before the trained model's backlogs the bench's site has its
    silent period: `n_films` of the model's own test films uploaded and read (in fp32, as the rule
    serves a site not yet checked), then the site's check, run as its job runs, in this process."""
    from PIL import Image

    from diagnosis import site_precision
    from diagnosis.models import Site
    from ml.engine import load_image_file
    from ml.selectors import active_version

    data = Path(json.loads(artifact.with_suffix(".json").read_text())["dataset"]["path"])
    uploads = []
    for relpath in json.loads(artifact.with_suffix(".splits.json").read_text())["test"][:n_films]:
        png = io.BytesIO()
        Image.fromarray(load_image_file(data / relpath)).save(png, format="PNG")
        uploads.append(client.upload(png.getvalue()))
    wait_until_finished(uploads, 120 + 2 * len(uploads))
    version, site = active_version(), Site.objects.get(code="bench")
    job, = site_precision.start_checks(version, sites=[site], via="bench", enqueue=False)
    check, summary = site_precision.execute_check(job.pk), site_precision.summary(version, site)
    return {"films": len(uploads), "status": check.status, "failure_reason": check.failure_reason,
            "served_in": summary["served_in"], "sentence": summary["sentence"]}


def run(size: int, backlog: int, lone: int, batch_size: int, logs: Path, fp32: bool = False, harmonised: bool = False,
        int8: bool = False, services: Services = Services(), artifact: Path | None = None, keep_fp32: tuple[str, ...] = (),
        silent_films: int = 100) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-e2e-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None))
    env = environment(data_dir, batch_size, services)
    os.environ.update(env)
    fresh_database_and_queue(services)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from portal.bootstrap import create_folders

    create_folders(settings)  # as `bin/portal setup` does
    call_command("migrate", verbosity=0)
    if artifact:
        serving, model = register_trained_version(artifact, int8, keep_fp32)
        size, spec = serving.version.input_size, serving.version.preprocessing
        harmonised = spec.get("crop", "none") != "none" or spec.get("intensity", "none") != "none"
    else:
        serving, model = register_version(size, data_dir / "artifact", fp32, harmonised, int8)
    patient = clinician_and_patient()
    files = scan_files(1 + lone + 2 * backlog)
    from diagnosis.models import Prediction, Scan

    report = {"image_size": size, "backlog": backlog, "lone": lone, "batch_size": batch_size, "harmonised": harmonised,
              "runtime": f"{serving.runtime} {serving.precision}", "precision_note": serving.reason,
              "artifact": str(artifact or ""), "kept_fp32": list(keep_fp32)}
    processes = []
    try:
        processes.append(start("web", env, logs / "web.log"))
        client = Client(patient.pk, services.port)
        first = client.upload(files[0])  # queued before any worker exists
        spawned = time.perf_counter()
        worker = start("inference-worker", env, logs / "worker.log")
        processes.append(worker)
        report["first_scan_s"] = wait_until_finished([first], 300) - spawned
        if artifact and serving.precision != "fp32":
            report["site_check"] = silent_period_checked(client, artifact, silent_films)

        latencies = []
        for data in files[1:1 + lone]:
            started = time.perf_counter()
            scan_id = client.upload(data)
            latencies.append(wait_until_finished([scan_id], 120) - started)
        report["lone_ms"] = {"p50": 1000 * percentile(latencies, 50), "p95": 1000 * percentile(latencies, 95),
                             "min": 1000 * min(latencies)}

        stop(worker)  # idle: every lone scan is finished and its message taken
        from bench.baselines import Baselines

        baselines = Baselines(serving, model, files[1 + lone:1 + lone + 16], data_dir)
        baselines.measure()
        drained = drained_backlog(client, files[1 + lone:1 + lone + backlog], env, logs, processes)
        baselines.measure()  # the drain's worker is idle now, before the racing uploads
        report["baselines"] = baselines.report()
        del baselines  # its runtime's threads and memory
        racing = racing_backlog(client, files[1 + lone + backlog:])  # the fresh worker of the drain, now warm
        report["failed"] = Scan.objects.filter(status="failed").count()
        for name, figures in (("racing", racing), ("drain", drained)):
            answered = Prediction.objects.filter(scan__in=figures.pop("ids"))
            figures["predictions"] = answered.count()
            figures["runtimes"] = sorted(set(answered.values_list("runtime", "precision")))
            report[name] = figures
        report["runtimes_recorded"] = sorted(set(Prediction.objects.values_list("runtime", "precision")))
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)  # the scans and the model (the database is dropped by the next run)
    return report


def print_report(report: dict) -> None:
    print(f"portal end to end ({report['runtime']}, {report['image_size']} px, batch size {report['batch_size']}, "
          f"{'harmonised as cpu-scratch trains' if report.get('harmonised') else 'plain resize'}, "
          f"PostgreSQL + Redis, gunicorn 2 workers, 1 inference worker; {report['failed']} scans failed):")
    if FORCED_BF16 in report.get("precision_note", ""):
        print(f"  {FORCED_BF16} (--fp32 keeps fp32)")
    if FORCED_INT8 in report.get("precision_note", ""):
        print(f"  {FORCED_INT8}")
    if report.get("artifact"):
        print(f"  trained model {report['artifact']}{' with ' + ', '.join(report['kept_fp32']) + ' kept in fp32' if report.get('kept_fp32') else ''}: "
              f"{report['precision_note']}")
    if "site_check" in report:
        check = report["site_check"]
        print(f"  the site's own check on its {check['films']} silent-period films: {check['failure_reason'] or check['sentence']}")
    print(f"  first scan after the worker process starts: {report['first_scan_s']:.2f} s")
    lone = report["lone_ms"]
    print(f"  lone scans ({report['lone']}): upload-to-result p50 {lone['p50']:.0f} ms, p95 {lone['p95']:.0f} ms")
    backlog = report["backlog"]
    racing = report["racing"]
    print(f"  backlog of {backlog}, uploads racing the worker: {racing['scans_per_s']:.2f} scans/s (first upload to last result, "
          f"{racing['seconds']:.1f} s, of which the uploads took {racing['upload_s']:.1f} s on the same cores; "
          f"{racing['predictions']} predictions in calls of {racing['calls']}, made by {racing['runtimes']})")
    print(f"    per scan {1000 * racing['seconds'] / backlog:.0f} ms: the worker's timed model call "
          f"(inference_ms) {racing['predict_ms_per_scan']:.1f} ms, everything else {racing['outside_ms_per_scan']:.1f} ms")
    drain = report["drain"]
    print(f"  backlog of {backlog}, a standing backlog drained (uploaded in {drain['upload_s']:.1f} s with no worker, then a "
          f"fresh worker): {drain['scans_per_s']:.2f} scans/s ({drain['counted']} scans of its second call to its last in "
          f"{drain['seconds']:.1f} s; its first call of {drain['first_call_scans']} done {drain['first_call_done_s']:.2f} s "
          f"after the process was spawned; {drain['predictions']} predictions in calls of {drain['calls']}, made by {drain['runtimes']})")
    print(f"    per scan {1000 * drain['seconds'] / drain['counted']:.0f} ms: the worker's timed model call "
          f"(inference_ms) {drain['predict_ms_per_scan']:.1f} ms, everything else {drain['outside_ms_per_scan']:.1f} ms")
    baselines = report["baselines"]
    before, after = baselines["each"]
    print(f"  timed in turn in the bench's process just before and just after the drain: the engine ({baselines['runtime']}, "
          f"batch {baselines['batch']}) {before['engine_images_per_s']:.2f} and {after['engine_images_per_s']:.2f} images/s, "
          f"the original path {before['original_ms']:.0f} and {after['original_ms']:.0f} ms: the drain is "
          f"{drain['scans_per_s'] / baselines['engine_images_per_s']:.2f} of the engine and "
          f"{drain['scans_per_s'] * baselines['original_ms'] / 1000:.2f}x the original path")


def main(argv=None) -> int:
    defaults = Services()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="71 px, backlogs of 24 and 4 lone scans: checks the script")
    parser.add_argument("--image-size", type=int, help="default 299 (71 with --quick)")
    parser.add_argument("--backlog", type=int, help="scans in each backlog, drained and racing (default 200, 24 with --quick)")
    parser.add_argument("--lone", type=int, help="default 20 (4 with --quick)")
    parser.add_argument("--batch-size", type=int, default=16, help="PORTAL_INFERENCE_BATCH_SIZE (default 16)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp32", action="store_true", help=f"serve fp32 even where the CPU has bf16 (default: {FORCED_BF16})")
    precision.add_argument("--int8", action="store_true", help=f"serve the int8 version derived from it ({FORCED_INT8})")
    parser.add_argument("--artifact", type=Path, help="a model trained by bench/train_cxr.py instead of random weights: registered and "
                        "checked for real (with --int8, derived through the unchanged check); its site gets the reduced precision only "
                        "after its own check on --silent-films of the model's test films")
    parser.add_argument("--keep-fp32", default="", help="with --artifact --int8: blocks kept in fp32, e.g. 'block2,block14'")
    parser.add_argument("--silent-films", type=int, default=100, help="with --artifact: the site's silent period (default 100)")
    parser.add_argument("--harmonised", action="store_true", help="the version harmonises its films as the cpu-scratch preset trains it "
                                                                  "(body crop, equalisation): default, a plain resize")
    add_service_arguments(parser, defaults)
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "bench-e2e-logs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    backlog = args.backlog or (24 if args.quick else 200)
    if backlog <= args.batch_size:
        parser.error("the backlog must be larger than the batch size: the drain rate leaves out the worker's first call")
    args.logs.mkdir(parents=True, exist_ok=True)
    report = run(args.image_size or (71 if args.quick else 299), backlog,
                 args.lone or (4 if args.quick else 20), args.batch_size, args.logs, args.fp32, args.harmonised, args.int8,
                 services_from(args), args.artifact, tuple(filter(None, args.keep_fp32.split(","))), args.silent_films)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
