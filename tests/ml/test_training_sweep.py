"""The job sweep (beat runs it every 30 s) and training: a worker that dies mid-job (SIGKILL, OOM,
lost machine) leaves its job `failed` with a reason once its attempts are used up, a live job is
left alone, and a job the broker never received is sent again."""
import os
import signal
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse

from jobs import lifecycle
from ml.engine import make_synthetic_dataset
from ml.models import ModelVersion, TrainingJob
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_killed_worker_leaves_its_job_failed_once_its_attempts_are_used_up(admin_client, settings, own_training_worker):
    settings.JOB_MAX_ATTEMPTS = 1  # a job killed once is not tried again (the scan test shows the retry)
    data = make_synthetic_dataset(settings.DATASETS_ROOT / f"kill-{uuid.uuid4().hex[:6]}", n_per_class=8, image_size=96, seed=5)
    admin_client.post(reverse("ml:job_create"), {
        "source": "folder", "dataset": data.name, "backbone": "xception", "epochs": 200, "image_size": 71, "batch_size": 8, "weights": "none",
    })
    job = TrainingJob.objects.get()

    # Running, inside Keras' fit (the engine logged the start of training), and the heartbeat
    # thread has stamped the row and copied the log since the job was claimed.
    def training():
        row = TrainingJob.objects.get(pk=job.pk)
        return row if row.status == "running" and row.heartbeat_at > row.started_at and "Training xception" in row.log_tail else None

    job = wait_for(training, timeout=180, interval=0.5, message="the job to train and send a heartbeat")
    assert job.worker and not job.worker.endswith(f":{own_training_worker.pid}")  # the pool child, not the main process

    # The sweep leaves a live job alone.
    settings.JOB_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
    swept = lifecycle.sweep()
    assert not swept.failed and not swept.requeued
    assert TrainingJob.objects.get(pk=job.pk).status == TrainingJob.Status.RUNNING

    # The whole worker (main process and pool child) dies without a chance to clean up.
    os.killpg(own_training_worker.pid, signal.SIGKILL)
    own_training_worker.wait(timeout=30)
    last_heartbeat = TrainingJob.objects.get(pk=job.pk).heartbeat_at

    # No heartbeat arrives any more; once it is older than the limit, the sweep fails the job.
    settings.JOB_HEARTBEAT_TIMEOUT = timedelta(seconds=3)
    failed = wait_for(lambda: lifecycle.sweep().failed, timeout=60, interval=1, message="the sweep to fail the job")
    assert [row.pk for row in failed] == [job.pk]
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.FAILED and job.finished_at
    assert job.heartbeat_at == last_heartbeat
    assert "stopped responding" in job.failure_reason and job.worker in job.failure_reason
    assert not ModelVersion.objects.filter(training_job=job).exists()
    panel = admin_client.get(reverse("ml:job_progress", args=[job.pk])).content.decode()
    assert "Failed." in panel and "stopped responding" in panel and 'data-live="false"' in panel
    assert not lifecycle.sweep().failed  # failed once, not again


def test_a_job_queued_while_the_broker_was_down_is_sent_by_the_sweep(admin_client, settings, broker_outage, own_training_worker):
    data = make_synthetic_dataset(settings.DATASETS_ROOT / f"outage-{uuid.uuid4().hex[:6]}", n_per_class=8, image_size=96, seed=6)
    with broker_outage():
        response = admin_client.post(reverse("ml:job_create"), {
            "source": "folder", "dataset": data.name, "backbone": "xception", "epochs": 1, "image_size": 71, "batch_size": 8, "weights": "none",
        })
    assert response.status_code == 302, "the job is accepted even though the broker is unreachable"
    job = TrainingJob.objects.get()
    assert job.status == TrainingJob.Status.QUEUED and job.enqueued_at is None

    assert [row.pk for row in lifecycle.sweep().sent] == [job.pk]
    # Sent: marked enqueued, unless the worker claimed it first (the mark only applies to a queued
    # job, and a fast worker wins that race: seen in a quiet CI rehearsal).
    sent = TrainingJob.objects.get(pk=job.pk)
    assert sent.enqueued_at is not None or sent.status != TrainingJob.Status.QUEUED
    wait_for(lambda: TrainingJob.objects.filter(pk=job.pk, status="running").exists(), timeout=120, message="the worker to take the re-sent job")
    os.killpg(own_training_worker.pid, signal.SIGKILL)  # no need to finish the training
