"""A web server without the datasets folder (docker-compose's: the site's folders are mounted on
the training worker only). Web checks a folder's name and queues the job; the training worker
checks the folder before it trains, and a folder it refuses fails the job with the refusal's
sentence. The models page names the evaluation set by its setting, with the fingerprint the
worker last measured, and "Evaluate" queues the run for the worker to check. No Keras here."""
import re
import uuid

import pytest
from django.urls import reverse

from ml import services
from ml.models import Evaluation, EvaluationRun, TrainingJob
from ml.services.training_data import dataset_dir
from tests.ml.test_reviewed_scans import FORM

# The job's heartbeat thread has its own connection: the job rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def queues_no_worker_serves(monkeypatch):
    """These tests run the jobs themselves (services.execute_*): their messages go to queues no worker
    serves, so the session's worker (the PostgreSQL stream has one running) cannot take them first."""
    for model in (TrainingJob, EvaluationRun):
        monkeypatch.setattr(model, "queue", f"unserved-{model.__name__.lower()}-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def web_without_datasets(settings, tmp_path):
    """Calls it the web server's turn: no datasets folder. Returns the function that makes it the
    training worker's turn again: the session's datasets folder."""
    worker_root = settings.DATASETS_ROOT

    def on_worker():
        settings.DATASETS_ROOT = worker_root

    def on_web():
        settings.DATASETS_ROOT = tmp_path / "not-mounted"
        return on_worker

    return on_web


def queue(admin_client, dataset, **fields):
    response = admin_client.post(reverse("ml:job_create"), {**FORM, "source": "folder", "dataset": dataset, **fields})
    assert response.status_code == 302, re.findall(r"field-error[^>]*>([^<]*)", response.content.decode())
    return TrainingJob.objects.get()


def test_web_queues_a_folder_it_cannot_see_and_the_worker_refuses_it_in_a_sentence(admin_client, web_without_datasets, dataset_folder):
    one_class = dataset_folder({"covid": 6})
    on_worker = web_without_datasets()
    job = queue(admin_client, one_class.name)
    assert job.status == TrainingJob.Status.QUEUED and job.dataset_path == one_class.name
    assert job.dataset_summary == {"path": one_class.name, "checked_on_worker": True, "warnings": []}
    assert admin_client.get(reverse("ml:job_detail", args=[job.pk])).status_code == 200

    on_worker()
    job = services.execute_training_job(job.pk)
    assert job.status == TrainingJob.Status.FAILED and job.epoch == 0
    assert job.failure_reason.startswith(f"The dataset folder “{one_class.name}” holds images of one class only (covid/)")
    assert job.failure_reason in admin_client.get(reverse("ml:job_detail", args=[job.pk])).content.decode()


def test_a_folder_missing_on_the_worker_fails_the_job_with_a_sentence(admin_client, web_without_datasets):
    on_worker = web_without_datasets()
    job = queue(admin_client, "site-films-2026")
    on_worker()
    job = services.execute_training_job(job.pk)
    assert job.status == TrainingJob.Status.FAILED
    assert job.failure_reason.startswith("The dataset folder “site-films-2026” does not exist in ")


def test_web_still_refuses_a_name_leading_out_of_the_datasets_folder(admin_client, web_without_datasets):
    web_without_datasets()
    response = admin_client.post(reverse("ml:job_create"), {**FORM, "source": "folder", "dataset": "../scans"})
    assert response.status_code == 400
    assert "must be inside the datasets folder" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_the_worker_records_its_check_as_web_would_have(admin_client, web_without_datasets, dataset_folder):
    folder = dataset_folder({"covid": 10, "normal": 10})
    on_worker = web_without_datasets()
    job = queue(admin_client, folder.name)
    on_worker()
    assert dataset_dir(job) == folder
    job.refresh_from_db()
    assert job.dataset_summary["classes"] == {"covid": 10, "normal": 10} and job.dataset_summary["checked_on_worker"] is True
    assert sum(job.dataset_summary["split_counts"]["train"].values()) > 0
    assert "checked_on_worker" not in services.start_training_job(actor=None, dataset=folder.name, weights="none", enqueue=False).dataset_summary


def test_the_models_page_and_evaluate_without_the_datasets_folder(admin_client, web_without_datasets, make_version, settings):
    version = make_version()
    on_worker = web_without_datasets()
    Evaluation.objects.create(version=version, dataset_path=settings.ML_EVALUATION_SET, dataset_fingerprint="f" * 64, n_images=12, metrics={"auc": 0.9})
    page = admin_client.get(reverse("ml:version_list"))
    assert page.status_code == 200
    assert page.context["evaluation_set"] == settings.ML_EVALUATION_SET and page.context["fingerprint"] == "f" * 64

    response = admin_client.post(reverse("ml:version_evaluate", args=[version.pk]))
    assert response.status_code == 302
    run = EvaluationRun.objects.get()
    assert run.dataset_path == settings.ML_EVALUATION_SET and run.status == EvaluationRun.Status.QUEUED
    on_worker()  # the worker has the datasets folder, but no evaluation set in it
    run = services.execute_evaluation(run.pk)
    assert run.status == EvaluationRun.Status.FAILED
    assert f"The dataset folder “{run.dataset_path}” does not exist in " in run.failure_reason
