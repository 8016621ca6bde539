"""The asynchronous path end to end: HTTP upload -> broker -> real Celery worker process -> database."""
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import scan_intake, storage
from diagnosis.models import Scan
from diagnosis.tasks import run_inference
from jobs import lifecycle
from ml.models import ModelVersion
from tests.conftest import start_celery_worker, stop_celery_worker, wait_for
from tests.images import chest_like, dicom_bytes, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def finished(scan_id):
    scan = Scan.objects.get(pk=scan_id)
    return scan if scan.status in {Scan.Status.DONE, Scan.Status.FAILED} else None


def test_upload_is_answered_by_a_real_worker(client, clinician, patient, active_model_version, celery_worker_process):
    client.force_login(clinician)
    response = client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]),
        {"images": [SimpleUploadedFile("a.png", png_bytes(seed=11)), SimpleUploadedFile("b.dcm", dicom_bytes(chest_like(128, seed=12)))]},
    )
    assert response.status_code == 302
    scans = list(Scan.objects.all())
    assert len(scans) == 2
    for scan in scans:
        scan = wait_for(lambda: finished(scan.pk), message=f"scan {scan.pk} to finish")
        assert scan.status == Scan.Status.DONE, scan.failure_reason
        prediction = scan.predictions.get()
        assert prediction.model_version == active_model_version
        assert prediction.label in active_model_version.class_names
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert prediction.positive_probability == pytest.approx(prediction.probabilities[active_model_version.positive_class])
        assert prediction.inference_ms > 0 and prediction.queue_to_result_ms >= prediction.inference_ms
        assert storage.read(prediction.heatmap_name).startswith(b"\x89PNG")
    assert "diagnosis.tasks.run_inference" in celery_worker_process.log_path.read_text()

    history = client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert f"Model {active_model_version.label}" in history
    assert "DEMO MODEL" in history, "a model trained on synthetic data must be labelled a demo"
    assert "hx-trigger" not in history, "the page stops polling once every result is in"

    heatmap = client.get(reverse("diagnosis:scan_heatmap", args=[scans[0].pk, scans[0].predictions.get().pk]))
    assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")

    api = client.get(reverse("api:scan_detail", args=[scans[0].pk])).json()
    assert api["status"] == "done"
    assert api["predictions"][0]["model_version"]["id"] == active_model_version.pk
    assert api["predictions"][0]["model_version"]["demo"] is True
    assert "not a diagnosis" in api["predictions"][0]["disclaimer"]


def test_without_an_active_model_the_scan_fails_with_a_reason(clinician, patient, celery_worker_process):
    assert not ModelVersion.objects.exists()
    (scan,) = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("a.png", png_bytes())])
    scan = wait_for(lambda: finished(scan.pk), message="scan to fail")
    assert scan.status == Scan.Status.FAILED
    assert "No model version is active" in scan.failure_reason
    assert not storage.path_of(storage.decoded_name(scan.stored_name)).exists(), "a failed scan's decoded copy is not left behind"


def test_scan_accepted_while_the_broker_is_down_is_sent_later_by_the_sweep(client, clinician, patient, active_model_version, celery_worker_process, broker_outage):
    client.force_login(clinician)
    with broker_outage():
        response = client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [SimpleUploadedFile("a.png", png_bytes())]})
    assert response.status_code == 302, "the upload must be accepted even though the broker is unreachable"
    scan = Scan.objects.get()
    assert scan.status == Scan.Status.QUEUED and scan.enqueued_at is None

    swept = lifecycle.sweep()  # the beat task, run here instead of waiting for beat
    assert [job.pk for job in swept.sent] == [scan.pk]
    scan = wait_for(lambda: finished(scan.pk), message="re-sent scan to finish")
    assert scan.status == Scan.Status.DONE, scan.failure_reason


def test_scan_whose_whole_worker_was_killed_mid_task_is_redone_once_by_the_sweep(
    clinician, patient, active_model_version, celery_worker_process, broker_outage, private_storage, settings
):
    """acks_late cannot help here: the filesystem broker deletes a message as soon as a worker reads
    it. The scan's heartbeat stops with its worker, and the sweep gives it to a healthy worker."""
    with broker_outage():
        (scan,) = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("a.png", png_bytes())])
    doomed = start_celery_worker(private_storage / "doomed-worker.log", queues="inference-doomed")
    try:
        run_inference.apply_async(args=[str(scan.pk)], queue="inference-doomed")
        # A fresh worker spends seconds loading the model for its first scan: time to kill it mid-task.
        wait_for(lambda: Scan.objects.get(pk=scan.pk).status == Scan.Status.RUNNING, interval=0.05, message="the doomed worker to start the scan")
        os.killpg(doomed.pid, signal.SIGKILL)  # the main process and its pool child, without any cleanup
        doomed.wait(timeout=30)
    finally:
        stop_celery_worker(doomed)
    scan.refresh_from_db()
    assert scan.status == Scan.Status.RUNNING and scan.attempts == 1, "the killed worker cannot have finished it"
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        assert not list(queue.glob("*.inference-doomed.msg")), "the filesystem broker keeps no message to redeliver"

    settings.JOB_HEARTBEAT_TIMEOUT = timedelta(seconds=3)
    swept = wait_for(lambda: lifecycle.sweep().requeued, timeout=30, interval=0.5, message="the sweep to notice the silent worker")
    assert [job.pk for job in swept] == [scan.pk]
    scan = wait_for(lambda: finished(scan.pk), message="the re-sent scan to finish on a healthy worker")
    assert scan.status == Scan.Status.DONE, scan.failure_reason
    assert scan.attempts == 2
    assert scan.predictions.count() == 1
    assert not lifecycle.sweep().sent, "a finished scan is never sent again"
