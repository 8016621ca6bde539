"""Training jobs through the real path: the portal's form -> broker -> a real Celery worker process
-> progress written back -> a candidate version -> promote -> the next scan names it."""
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import scan_intake
from diagnosis.models import Scan
from ml import runtime, services
from ml.engine import make_synthetic_dataset
from ml.models import Evaluation, ModelVersion, Promotion, TrainingJob
from tests.conftest import wait_for
from tests.images import png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TINY_JOB = {"source": "folder", "backbone": "xception", "epochs": 1, "image_size": 71, "batch_size": 8, "weights": "none"}


@pytest.fixture(scope="module")
def tiny_dataset():
    folder = make_synthetic_dataset(Path(settings.DATASETS_ROOT) / "tiny-synthetic", n_per_class=8, image_size=96, seed=21)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def job_ended(job_id):
    job = TrainingJob.objects.get(pk=job_id)
    return job if job.is_finished else None


def scan_answered_by(clinician, patient, seed):
    (scan,) = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("x.png", png_bytes(seed=seed))])
    scan = wait_for(lambda: Scan.objects.filter(pk=scan.pk, status__in=["done", "failed"]).first(), message="the scan's result")
    assert scan.status == Scan.Status.DONE, scan.failure_reason
    return scan.predictions.get().model_version


def test_a_job_started_from_the_page_trains_in_the_worker_and_shows_its_progress(admin_client, tiny_dataset, celery_worker_process):
    response = admin_client.post(reverse("ml:job_create"), {**TINY_JOB, "dataset": tiny_dataset.name})
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("ml:job_detail", args=[job.pk])
    page = admin_client.get(response.url).content.decode()
    assert 'id="job-progress"' in page and "live.js" in page

    # The page's progress panel, polled as the browser does, follows the job to its end.
    seen = set()

    def progress_until_finished():
        panel = admin_client.get(reverse("ml:job_progress", args=[job.pk])).content.decode()
        seen.add(TrainingJob.objects.get(pk=job.pk).status)
        return panel if 'data-live="false"' in panel else None

    panel = wait_for(progress_until_finished, timeout=420, interval=0.3, message="the training job to finish")
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.SUCCEEDED, f"{job.failure_reason}\n{job.log_tail}"
    assert "running" in seen
    assert job.started_at and job.finished_at and job.heartbeat_at and job.worker and job.attempts == 1
    assert job.epoch == 1 and [row["epoch"] for row in job.history] == [1] and "val_loss" in job.history[0]
    assert "epoch 1/1" in job.log_tail and "registered candidate" in job.log_tail
    assert 'value="100"' in panel and "val_loss" in panel


def test_a_finished_job_registers_a_demo_candidate_measured_on_the_evaluation_set(
    admin_client, administrator, tiny_dataset, evaluation_set, celery_worker_process
):
    admin_client.post(reverse("ml:job_create"), {**TINY_JOB, "dataset": tiny_dataset.name})
    job = wait_for(lambda: job_ended(TrainingJob.objects.get().pk), timeout=420, message="the training job to finish")
    assert job.status == TrainingJob.Status.SUCCEEDED, f"{job.failure_reason}\n{job.log_tail}"
    version = job.version
    assert version.status == ModelVersion.Status.CANDIDATE and version.trained_on_synthetic_data
    assert version.created_by == administrator and version.backbone == "xception" and version.input_size == 71
    assert runtime.artifact_path(version).is_file() and str(runtime.artifact_path(version)).startswith(str(settings.MODEL_STORE_DIR))
    panel = admin_client.get(reverse("ml:job_progress", args=[job.pk])).content.decode()
    assert f"Registered candidate <a href=\"{reverse('ml:version_detail', args=[version.pk])}\">{version.label}</a>" in panel
    assert "DEMO" in panel
    evaluation = wait_for(lambda: Evaluation.objects.filter(version=version).first(), timeout=120, message="the evaluation")
    assert evaluation.dataset_path == "evaluation" and evaluation.n_images == 12
    assert evaluation.metrics["roc_auc"]["value"] is not None and evaluation.metrics["roc_curve"]["fpr"]


def test_promoting_and_rolling_back_switch_the_version_that_answers_the_next_scan(
    admin_client, administrator, clinician, patient, active_model_version, tiny_model_artifact, celery_worker_process
):
    previous = active_model_version
    assert scan_answered_by(clinician, patient, seed=1) == previous
    candidate = services.register_version(artifact_path=tiny_model_artifact.artifact_path, record=tiny_model_artifact.record)

    # Promote, confirmed on the page: the next scan is analysed by the new version, no worker restarted.
    assert admin_client.get(reverse("ml:version_promote", args=[candidate.pk])).status_code == 200
    admin_client.post(reverse("ml:version_promote", args=[candidate.pk]), {"reason": "trained from the portal", "override": "on"})
    assert scan_answered_by(clinician, patient, seed=2) == candidate

    # Roll back in the same way: the scan after that is analysed by the previous version again.
    admin_client.post(reverse("ml:version_promote", args=[previous.pk]), {"reason": "roll back", "override": "on"})
    assert scan_answered_by(clinician, patient, seed=3) == previous
    promotions = list(Promotion.objects.order_by("id").values_list("from_version", "to_version", "is_rollback", "actor"))
    assert promotions[-2:] == [(previous.pk, candidate.pk, False, administrator.pk), (candidate.pk, previous.pk, True, administrator.pk)]
    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1


def test_cancelling_a_running_job_stops_the_worker_and_registers_nothing(admin_client, tiny_dataset, celery_worker_process):
    admin_client.post(reverse("ml:job_create"), {**TINY_JOB, "dataset": tiny_dataset.name, "epochs": 200})
    job = TrainingJob.objects.get()
    wait_for(lambda: TrainingJob.objects.filter(pk=job.pk, status="running").exists(), timeout=120, message="the job to start")
    admin_client.post(reverse("ml:job_cancel", args=[job.pk]))
    job = wait_for(lambda: job_ended(job.pk), timeout=300, message="the job to stop")
    assert job.status == TrainingJob.Status.CANCELLED, f"{job.failure_reason}\n{job.log_tail}"
    assert job.failure_reason == "Cancelled by an administrator."
    assert job.epoch < 200 and not ModelVersion.objects.filter(training_job=job).exists()
    assert not list((Path(settings.MODEL_STORE_DIR) / "jobs").glob(f"job-{job.pk}-*"))
