"""What the database says about the scans bench/portal_e2e.py sent: when they were finished, which
model call answered each, and each scan's share of the forward pass the worker timed."""
from __future__ import annotations

import statistics
import time

import numpy as np


def wait_until_finished(ids, timeout: float, every: float = 0.01) -> float:
    """perf_counter when every scan in `ids` is done or failed (polling the database `every` seconds)."""
    from diagnosis.models import Scan

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if Scan.objects.filter(pk__in=ids, status__in=["done", "failed"]).count() == len(ids):
            return time.perf_counter()
        time.sleep(every)
    raise TimeoutError(f"{len(ids)} scans not finished within {timeout:.0f} s")


def percentile(values, q):
    return float(np.percentile(values, q))


def worker_calls(ids) -> list[list]:
    """The answered scans in `ids` grouped by the model call that answered them, in the order the
    calls finished, each as sorted (finished_at, pk) rows: a call's scans record the same share of
    its time (inference_ms). (A worker may claim the next batch before the last one is finished,
    so the claim times do not separate the calls.)"""
    from diagnosis.models import Prediction

    calls = {}
    for share, finished, pk in Prediction.objects.filter(scan__in=ids).values_list("inference_ms", "scan__finished_at", "scan_id"):
        calls.setdefault(share, []).append((finished, pk))
    return sorted((sorted(rows) for rows in calls.values()), key=lambda rows: rows[-1][0])


def counted_after(ids, skipped: int, calls=None):
    """A drain's rate leaves out its first `skipped` model calls to finish (each worker's start-up and
    first call): the scans of the later calls, the seconds from the end of the last skipped call to
    the last result, and that end."""
    calls = worker_calls(ids) if calls is None else calls
    counted_from = calls[skipped - 1][-1][0]
    counted = [pk for call in calls[skipped:] for _, pk in call]
    return counted, (last_result(ids) - counted_from).total_seconds(), counted_from


def last_result(ids):
    """The finished_at stamp of the last of these scans: a batch's results are committed together
    a few milliseconds after their stamps."""
    from django.db.models import Max

    from diagnosis.models import Scan

    return Scan.objects.filter(pk__in=ids).aggregate(last=Max("finished_at"))["last"]


def predict_ms_per_scan(ids) -> float:
    """The mean of the Prediction rows' inference_ms: each scan's share of the forward pass the
    worker times (diagnosis/inference.py)."""
    from diagnosis.models import Prediction

    return statistics.fmean(Prediction.objects.filter(scan__in=ids).values_list("inference_ms", flat=True))


def call_sizes(calls) -> str:
    """'16 x 12, 8': how many scans each call took, as runs."""
    runs = []
    for call in calls:
        if runs and runs[-1][0] == len(call):
            runs[-1][1] += 1
        else:
            runs.append([len(call), 1])
    return ", ".join(f"{size} x {count}" if count > 1 else f"{size}" for size, count in runs)
