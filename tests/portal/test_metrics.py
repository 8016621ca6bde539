"""Prometheus metrics: /metrics is closed without its bearer token and, with it, reports request
latency, queue depth per queue, finished and failed scans, DICOM instances received and drift
alerts, through the Django test client; a real Celery worker serves the inference time of the
scan it analysed at its own metrics address."""
import urllib.error
import urllib.request

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from diagnosis import inference, scan_intake
from diagnosis.models import Scan
from pacs import receiving
from pacs.models import DicomNode
from tests.conftest import WORKER_METRICS_TOKEN, wait_for
from tests.images import png_bytes
from tests.pacs.conftest import radiograph

TOKEN = "a-metrics-token-for-this-test"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    cache.delete("portal-metrics-drift")
    return TOKEN


def value(text, name, **labels):
    """The sample `name` with exactly these labels in a Prometheus exposition; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0


def scrape(client, token=TOKEN):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Token {TOKEN}", "Bearer "])
def test_metrics_are_not_found_without_the_right_bearer_token(client, db, metrics_token, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    assert client.get("/metrics", **headers).status_code == 404


def test_metrics_are_off_while_no_token_is_set(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_request_latency_is_labelled_by_view_never_by_path(clinician_client, patient, metrics_token):
    before = scrape(clinician_client)
    assert clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 200
    after = scrape(clinician_client)
    labels = {"method": "GET", "view": "diagnosis:patient_detail", "status": "200"}
    assert value(after, "portal_http_request_duration_seconds_count", **labels) == value(before, "portal_http_request_duration_seconds_count", **labels) + 1
    assert value(after, "portal_http_request_duration_seconds_sum", **labels) > 0
    assert f"/patients/{patient.pk}" not in after and "MRN-0001" not in after


def test_queue_depth_counts_the_scans_waiting_per_queue(client, queued_scans, metrics_token):
    queued_scans(3)
    text = scrape(client)
    assert value(text, "portal_queue_depth", queue="inference") == 3
    assert value(text, "portal_queue_depth", queue="training") == 0
    assert value(text, "portal_jobs_running", queue="inference") == 0


def test_a_failed_scan_counts_as_finished_and_as_a_job_failure(client, clinician_scan, metrics_token, django_capture_on_commit_callbacks):
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        inference.analyse_scan(clinician_scan.pk)  # no model version is active: the scan fails with a reason
    clinician_scan.refresh_from_db()
    assert clinician_scan.status == Scan.Status.FAILED
    after = scrape(client)
    assert value(after, "portal_scans_finished_total", status="failed") == value(before, "portal_scans_finished_total", status="failed") + 1
    assert value(after, "portal_job_failures_total", kind="scan") == value(before, "portal_job_failures_total", kind="scan") + 1


def test_dicom_instances_received_are_counted_by_outcome(client, site_a, patient, metrics_token, django_capture_on_commit_callbacks):
    node = DicomNode.objects.create(ae_title="MODALITY_1", host="127.0.0.1", port=104, site=site_a)
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        assert receiving.receive(node, radiograph(view="LL")) == receiving.SUCCESS  # a lateral film: acknowledged, skipped
        assert receiving.receive(node, b"not a DICOM dataset") == receiving.CANNOT_UNDERSTAND
    after = scrape(client)
    for outcome in ("skipped", "refused"):
        counted = "portal_dicom_instances_received_total"
        assert value(after, counted, outcome=outcome) == value(before, counted, outcome=outcome) + 1


def test_each_live_site_reports_its_drift_alerts(client, site_a, site_b, metrics_token):
    text = scrape(client)
    # Live sites without a week outside their limits (the drift watch itself: tests/diagnosis/test_site_drift.py).
    assert "portal_site_drift_alerts{site=\"ste\"} 0.0" in text
    assert "portal_site_drift_alerts{site=\"cg\"} 0.0" in text


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_real_worker_serves_the_inference_time_of_the_scan_it_analysed(clinician, patient, active_model_version, celery_worker_process):
    def worker_metrics(token=WORKER_METRICS_TOKEN):
        request = urllib.request.Request(celery_worker_process.metrics_url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    with pytest.raises(urllib.error.HTTPError) as refused:
        worker_metrics(token="wrong")
    assert refused.value.code == 404

    (scan,) = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("a.png", png_bytes(seed=5))])
    scan = wait_for(lambda: Scan.objects.filter(pk=scan.pk, status__in=["done", "failed"]).first(), message="the scan to finish")
    assert scan.status == Scan.Status.DONE, scan.failure_reason
    prediction = scan.predictions.get()
    text = wait_for(lambda: (lambda text: text if value(text, "portal_scans_finished_total", status="done") else None)(worker_metrics()),
                    timeout=10, message="the worker to report the scan")
    labels = {"runtime": prediction.runtime, "precision": prediction.precision}
    assert prediction.runtime and prediction.precision
    assert value(text, "portal_inference_seconds_count", **labels) >= 1
    assert value(text, "portal_inference_seconds_sum", **labels) >= prediction.inference_ms / 1000 * 0.999
