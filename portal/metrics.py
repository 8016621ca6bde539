"""The portal's Prometheus metrics (prometheus-client), recorded where each event happens.

Every process of a role writes its figures into the role's PROMETHEUS_MULTIPROC_DIR (bin/portal
makes a fresh one per start), so what gunicorn's workers or a Celery worker's pool children counted
is added up when the role is scraped: the web server at /metrics, a worker or the DICOM listener at
PORTAL_METRICS_BIND (portal.metrics_export). Without that variable (tests, runserver) the figures
stay in the process. Labels never carry a patient, a record number or a path: a view's name, a
runtime, a queue, an outcome.

Counters count on commit: a transaction rolled back counted nothing."""
import time

from django.db import transaction
from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "portal_http_request_duration_seconds", "Time from a request reaching Django to its response leaving it.",
    ["method", "view", "status"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
INFERENCE_SECONDS = Histogram(
    "portal_inference_seconds", "Each scan's share of its batch's forward pass, by runtime and precision.",
    ["runtime", "precision"], buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
)
SCANS_FINISHED = Counter("portal_scans_finished", "Scans whose analysis ended, by how (done or failed).", ["status"])
JOB_FAILURES = Counter("portal_job_failures", "Background jobs that ended failed, by kind (scan, trainingjob, ...).", ["kind"])
DICOM_RECEIVED = Counter(
    "portal_dicom_instances_received", "DICOM instances nodes sent, by what became of them "
    "(analysed, unmatched, skipped, duplicate, refused).", ["outcome"],
)
DICOM_SENT = Counter(
    "portal_dicom_objects_sent", "Result objects a node confirmed it stored (Secondary Capture, Structured Report).",
    ["object"],
)


class RequestLatencyMiddleware:
    """Times every request through the rest of the stack, labelled by the view's name (never its
    path, which holds record ids) and the status; unresolved addresses share one label."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or "unnamed") if match else "unresolved"
        REQUEST_SECONDS.labels(request.method if request.method in KNOWN_METHODS else "other", view,
                               str(response.status_code)).observe(time.perf_counter() - started)
        return response


KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def jobs_finished(model, status, count):
    """`count` jobs of `model` ended with `status` (jobs.lifecycle, for every kind of job)."""
    def record():
        if model._meta.model_name == "scan":
            SCANS_FINISHED.labels(status).inc(count)
        if status == model.Status.FAILED:
            JOB_FAILURES.labels(model._meta.model_name).inc(count)

    if count:
        transaction.on_commit(record)


def predictions_recorded(predictions):
    """The model's answers were written: each scan's share of its pass, by runtime and precision."""
    def record():
        for prediction in predictions:
            INFERENCE_SECONDS.labels(prediction.runtime or "unknown", prediction.precision or "unknown").observe(prediction.inference_ms / 1000)

    if predictions:
        transaction.on_commit(record)


def dicom_instance_received(outcome):
    transaction.on_commit(lambda: DICOM_RECEIVED.labels(outcome).inc())


def dicom_object_sent(name):
    transaction.on_commit(lambda: DICOM_SENT.labels(name).inc())
