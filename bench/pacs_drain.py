"""A backlog from a real Orthanc drained: N instances sent to the portal in one store-to-modality
call, timed until every Secondary Capture and SR is stored back in Orthanc, against the engine's
batch rate measured in the same run.

    nice .venv/bin/python bench/pacs_drain.py [--instances 200 | --quick] [--batch 8] [--size 299]
        [--fp32] [--orthanc-nodelay] [--database NAME] [--redis-db N]

The setup is bench/pacs_setup.py's (its own PostgreSQL and Redis databases: `portal_bench_pacs`
and 11 unless told). One study goes through first as a warm-up (the worker's model load, imports).
Then N distinct 1024 x 1024 12-bit CR films are uploaded to Orthanc (not timed) and Orthanc is
asked to send them all to the portal in one call (Orthanc's job: one association); the clock runs
from that call to the last object Orthanc confirmed (ResultSend.sc_sent_at and sr_sent_at: the SR
goes first, the Secondary Capture after it; the database is polled once a second, the stamps give
the end). The worker runs with PORTAL_INFERENCE_BATCH_SIZE = --batch.
The sends run on `bin/portal pacs-worker`, as `make run` starts it. Then, with the inference worker
stopped, the engine it runs (same export and precision) is timed at that batch size in this
process: its images/s is the baseline. Also reported: the CPU time per instance over the drain of
each process (/proc: the listener alone, as before; each worker and Orthanc with their children),
and Orthanc's count of instances at the end (each film, its SC and its SR). Target (issue 20): the drain at 0.85 of the engine's
batch rate or more.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.dicom_listener import cpu_seconds, film  # noqa: E402
from bench.pacs_setup import add_arguments, engine_ms, portal_with_orthanc, post, store_to_portal  # noqa: E402

TARGET_RATIO = 0.85
POLL_SECONDS = 1.0  # the stamps give the end; polling more often would take the cores the drain needs


def session_cpu_seconds(session):
    """CPU seconds of every live process of a session (a worker and its pool children)."""
    total = 0.0
    for pid in (int(entry.name) for entry in Path("/proc").glob("[0-9]*")):
        try:
            if os.getsid(pid) == session:
                total += cpu_seconds(pid)
        except OSError:
            continue  # ended meanwhile
    return total


def wait_for_results(count, timeout, folder):
    """Until `count` results have both objects in Orthanc."""
    from pacs.models import ResultSend

    deadline = time.monotonic() + timeout
    while ResultSend.objects.filter(sr_sent_at__isnull=False, sc_sent_at__isnull=False).count() < count:
        if time.monotonic() > deadline:
            done = ResultSend.objects.filter(sr_sent_at__isnull=False, sc_sent_at__isnull=False).count()
            raise SystemExit(f"only {done} of {count} results with their SR and Secondary Capture in Orthanc after {timeout} s; see {folder}")
        time.sleep(POLL_SECONDS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="40 instances instead of 200")
    parser.add_argument("--batch", type=int, default=8)
    add_arguments(parser, "portal_bench_pacs", 11)
    args = parser.parse_args()
    count = 40 if args.quick else args.instances
    with portal_with_orthanc(args, batch_size=args.batch) as portal:
        from diagnosis.models import Prediction
        from pacs.models import ReceivedInstance, ResultSend

        store_to_portal(portal.orthanc_url, [post(f"{portal.orthanc_url}/instances", film(1024, 0, "B-1"))["ID"]])
        wait_for_results(1, 300, portal.folder)  # the warm-up
        instances = [post(f"{portal.orthanc_url}/instances", film(1024, seed, "B-1"))["ID"] for seed in range(1, count + 1)]
        listener = portal.processes["dicom-listener"]
        roles = ("inference-worker", "pacs-worker", "orthanc")
        cpu_before, load_before = cpu_seconds(listener.pid), os.getloadavg()[0]
        roles_before = {role: session_cpu_seconds(portal.processes[role].pid) for role in roles}
        started = time.time()
        store_to_portal(portal.orthanc_url, instances, synchronous=False)
        wait_for_results(count + 1, 120 + 10 * count, portal.folder)
        listener_ms = (cpu_seconds(listener.pid) - cpu_before) * 1000 / count
        roles_ms = {role: (session_cpu_seconds(portal.processes[role].pid) - roles_before[role]) * 1000 / count for role in roles}
        drained = max(max(pair) for pair in ResultSend.objects.values_list("sr_sent_at", "sc_sent_at")).timestamp() - started
        received = max(ReceivedInstance.objects.values_list("received_at", flat=True)).timestamp() - started
        analysed = max(Prediction.objects.values_list("created_at", flat=True)).timestamp() - started
        failed = ResultSend.objects.exclude(status=ResultSend.Status.SENT).count()
        with urllib.request.urlopen(f"{portal.orthanc_url}/statistics", timeout=30) as answer:
            in_orthanc = json.loads(answer.read())["CountInstances"]
        load_during = os.getloadavg()[0]
        portal.stop_worker()
        batch_ms, runtime = engine_ms(portal.serving, args.batch)
    rate, engine_rate = count / drained, args.batch * 1000 / batch_ms
    print(f"{count} instances (1024 x 1024 12-bit CR) from Orthanc in one call, {args.size} px Xception, {runtime}, "
          f"worker batch {args.batch}, on {os.cpu_count()} CPUs, load {load_before:.2f} before and {load_during:.2f} at the end")
    print(f"drained in {drained:.1f} s: {rate:.2f} studies/s (Orthanc's last instance received after {received:.1f} s, "
          f"the last result recorded after {analysed:.1f} s; "
          f"{in_orthanc} instances in Orthanc: {count + 1} films, their SCs and SRs; {failed} sends not sent)")
    print(f"engine at batch {args.batch} (same run, worker stopped): {batch_ms:.0f} ms a pass, {engine_rate:.2f} images/s")
    print(f"CPU per instance during the drain: listener {listener_ms:.1f} ms, "
          + ", ".join(f"{role} {ms:.1f} ms" for role, ms in roles_ms.items()))
    ratio = rate / engine_rate
    print(f"drain / engine: {ratio:.2f} (target at least {TARGET_RATIO}): {'met' if ratio >= TARGET_RATIO else 'missed'}")


if __name__ == "__main__":
    main()
