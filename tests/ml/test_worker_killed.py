"""A worker that dies mid-job (SIGKILL, OOM, lost machine) leaves its job `failed` with a reason,
found by the abandoned-job sweep that beat runs every minute; a live job is left alone."""
import os
import signal
import subprocess
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse

from ml import tasks
from ml.engine.synthetic import make_synthetic_dataset
from ml.models import ModelVersion, TrainingJob
from tests.conftest import CELERY, PROJECT_ROOT, start_celery_worker, stop_celery_worker, wait_for, worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

DOOMED_QUEUE = "training-killed-worker-test"


@pytest.fixture
def doomed_worker(settings, private_storage):
    """A training worker of its own, on a queue of its own, so killing it touches nothing else."""
    settings.ML_TRAINING_QUEUE = DOOMED_QUEUE
    subprocess.run([*CELERY, "purge", "-f", "-Q", DOOMED_QUEUE], env=worker_environment(), cwd=PROJECT_ROOT, capture_output=True, timeout=60)
    process = start_celery_worker(private_storage / f"doomed-worker-{uuid.uuid4().hex[:6]}.log", queues=DOOMED_QUEUE)
    yield process
    stop_celery_worker(process)


def test_a_killed_worker_leaves_its_job_failed_once_the_sweep_runs(admin_client, settings, private_storage, doomed_worker):
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
    assert job.worker_pid and job.worker_pid != doomed_worker.pid  # the pool child, not the main process

    # The sweep leaves a live job alone.
    settings.ML_TRAINING_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
    assert tasks.fail_abandoned_training_jobs() == []
    assert TrainingJob.objects.get(pk=job.pk).status == TrainingJob.Status.RUNNING

    # The whole worker (main process and pool child) dies without a chance to clean up.
    os.killpg(doomed_worker.pid, signal.SIGKILL)
    doomed_worker.wait(timeout=30)
    last_heartbeat = TrainingJob.objects.get(pk=job.pk).heartbeat_at

    # No heartbeat arrives any more; once it is older than the limit, the sweep fails the job.
    settings.ML_TRAINING_HEARTBEAT_TIMEOUT = timedelta(seconds=3)
    failed = wait_for(lambda: tasks.fail_abandoned_training_jobs(), timeout=60, interval=1, message="the sweep to fail the job")
    assert failed == [job.pk]
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.FAILED and job.finished_at
    assert job.heartbeat_at == last_heartbeat
    assert "The training worker stopped responding" in job.failure_reason and str(job.worker_pid) in job.failure_reason
    assert not ModelVersion.objects.filter(training_job=job).exists()
    panel = admin_client.get(reverse("ml:job_progress", args=[job.pk])).content.decode()
    assert "Failed." in panel and "stopped responding" in panel and 'data-finished="true"' in panel
    assert tasks.fail_abandoned_training_jobs() == []  # failed once, not again

