"""A lone study from a real Orthanc's C-STORE to its SR stored back in that Orthanc, against the
engine's own batch-1 forward pass measured in the same run.

    nice .venv/bin/python bench/pacs_roundtrip.py [--studies 12] [--size 299] [--fp32] [--orthanc-nodelay]
        [--database NAME] [--redis-db N]

Its own PostgreSQL and Redis databases (bench/portal_setup.py: `portal_bench_pacs` and 11 unless
told), a random-init Xception version served as a worker serves it (bf16 forced where the CPU has
it, as bench/portal_e2e.py explains; --fp32 keeps fp32), Orthanc (Debian's package) on free
loopback ports naming the portal's listener as a modality, `bin/portal dicom-listener`,
`bin/portal inference-worker` and `bin/portal pacs-worker` (the send). Each study is one 1024 x 1024 12-bit CR film: uploaded to Orthanc
(not timed), then timed from Orthanc's store-to-modality call to the moment Orthanc confirmed the
SR's C-STORE (ResultSend.sr_sent_at; the portal sends the SR first, and the Secondary Capture's
time is reported beside it), one study at a time; the first is a
warm-up (the worker's model load, imports). Then, with the worker idle, the engine the worker runs
(same export and precision) timed at batch 1 in this process. Target (issue 20): p50 at most the
engine's batch-1 time + 500 ms.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.dicom_listener import film  # noqa: E402
from ml.engine.serve.serving import cpu_description  # noqa: E402
from bench.pacs_setup import add_arguments, engine_ms, portal_with_orthanc, post, store_to_portal  # noqa: E402

TARGET_EXTRA_MS = 500.0


# Where a lone study's time goes, from the timestamps its rows carry (each the end of a stage).
STAGES = (("listener: C-STORE until the instance row", "received_at"), ("listener: intake, commit, scan queued", "scan_enqueued"),
          ("queue: worker takes the scan", "scan_started"), ("worker: prepare, forward pass, record", "scan_finished"),
          ("queue: worker takes the send", "send_started"), ("send: build the SR, C-STORE it", "sr_sent"),
          ("send: build the SC, C-STORE it (after the target)", "sc_sent"))


def stage_times(started, send):
    """{stage: ms} of one study, from Orthanc's store call (`started`, epoch seconds) to its SR stored."""
    from pacs.models import ReceivedInstance

    scan = send.prediction.scan
    received = ReceivedInstance.objects.get(scan=scan)
    marks = {"received_at": received.received_at, "scan_enqueued": scan.enqueued_at, "scan_started": scan.started_at,
             "scan_finished": scan.finished_at, "send_started": send.started_at, "sc_sent": send.sc_sent_at, "sr_sent": send.sr_sent_at}
    times, before = {}, started
    for name, mark in STAGES:
        at = marks[mark].timestamp() if marks[mark] else before
        times[name], before = 1000 * (at - before), at
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=12)
    add_arguments(parser, "portal_bench_pacs", 11)
    args = parser.parse_args()
    with portal_with_orthanc(args, batch_size=1) as portal:
        from pacs.models import ResultSend

        latencies, both, stages = [], [], []
        for seed in range(args.studies + 1):
            instance = post(f"{portal.orthanc_url}/instances", film(1024, seed, "B-1"))["ID"]
            started = time.time()
            store_to_portal(portal.orthanc_url, [instance])
            deadline = time.monotonic() + 300
            while ResultSend.objects.filter(sr_sent_at__isnull=False, sc_sent_at__isnull=False).count() <= seed:
                if time.monotonic() > deadline:
                    raise SystemExit(f"study {seed}: no SR and SC in Orthanc after 300 s; see {portal.folder}")
                time.sleep(0.01)
            newest = ResultSend.objects.select_related("prediction__scan").order_by("-sr_sent_at").first()
            if seed:  # the first is the warm-up
                latencies.append(1000 * (newest.sr_sent_at.timestamp() - started))
                both.append(1000 * (newest.sc_sent_at.timestamp() - started))
                stages.append(stage_times(started, newest))
        portal.stop_worker()
        engine, runtime = engine_ms(portal.serving, 1)
    p50 = statistics.median(latencies)
    print(f"{args.studies} lone studies (1024 x 1024 12-bit CR), {args.size} px Xception, {runtime}, on {os.cpu_count()} CPUs ({cpu_description()['model']}), load {os.getloadavg()[0]:.2f}")
    print(f"C-STORE from Orthanc to the SR stored in Orthanc: p50 {p50:.0f} ms, min {min(latencies):.0f}, max {max(latencies):.0f}")
    print(f"  ... and to its Secondary Capture stored too (sent after the SR): p50 {statistics.median(both):.0f} ms")
    print(f"engine batch-1 forward pass (same run, worker idle): {engine:.0f} ms")
    for name, _ in STAGES:
        print(f"  {name:42s} p50 {statistics.median(each[name] for each in stages):6.0f} ms")
    extra = p50 - engine
    print(f"p50 beside the engine: {extra:+.0f} ms (target at most +{TARGET_EXTRA_MS:.0f} ms): {'met' if extra <= TARGET_EXTRA_MS else 'missed'}")


if __name__ == "__main__":
    main()
