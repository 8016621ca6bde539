"""Starting training jobs: the data is checked before anything is queued, and refusals say what to fix."""

import pytest
from django.urls import reverse

from ml import services
from ml.models import TrainingJob
from tests.ml.conftest import make_dataset
from tests.shared_data import SHARED_DATA, needs

pytestmark = pytest.mark.django_db

FORM = {"source": "folder", "backbone": "xception", "epochs": 2, "image_size": 71, "batch_size": 4, "weights": "none"}


def start(admin_client, **fields):
    return admin_client.post(reverse("ml:job_create"), {**FORM, **fields})


def test_a_missing_folder_is_refused_before_anything_is_queued(admin_client):
    response = start(admin_client, dataset="no-such-folder")
    assert response.status_code == 400
    assert "The dataset folder “no-such-folder” does not exist" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_a_one_class_folder_is_refused_before_anything_is_queued(admin_client, dataset_folder):
    folder = dataset_folder({"covid": 4})
    (folder / "normal").mkdir()  # an empty class folder does not count
    response = start(admin_client, dataset=folder.name)
    assert response.status_code == 400
    assert "holds images of one class only (covid/); training needs at least two class folders" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_a_folder_of_loose_images_is_refused(admin_client, dataset_folder):
    folder = dataset_folder({"covid": 2, "normal": 2})
    for image in list(folder.rglob("*.png")):
        image.rename(folder / image.name)
    for sub in [folder / "covid", folder / "normal"]:
        sub.rmdir()
    response = start(admin_client, dataset=folder.name)
    assert "holds no class folders with images" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_damaged_or_foreign_files_are_named_in_the_refusal(admin_client, dataset_folder, settings):
    settings.ML_DATASET_CHECK_SAMPLE = 1  # the first image of each class is decoded, the rest identified by their first bytes
    folder = dataset_folder({"covid": 3, "normal": 3})
    (folder / "covid" / "covid-0.png").write_bytes((folder / "covid" / "covid-0.png").read_bytes()[:200])
    (folder / "normal" / "zz-renamed.jpg").write_text("a text file with an image's name")
    (folder / "normal" / "notes.txt").write_text("not an image, and not named like one: training ignores it")
    content = start(admin_client, dataset=folder.name).content.decode()
    assert "covid/covid-0.png: The PNG file is damaged or incomplete" in content
    assert "normal/zz-renamed.jpg: The file is not a PNG, JPEG or DICOM image." in content
    assert "notes.txt" not in content
    assert not TrainingJob.objects.exists()


def test_a_folder_too_small_to_split_is_refused(admin_client, dataset_folder):
    folder = dataset_folder({"covid": 2, "normal": 2})
    content = start(admin_client, dataset=folder.name).content.decode()
    assert f"The dataset folder “{folder.name}” cannot be split for training: The val split has no images" in content
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize("dataset", ["../", "/etc", "..", "."])
def test_folders_outside_the_datasets_folder_are_refused(admin_client, dataset):
    response = start(admin_client, dataset=dataset)
    assert response.status_code == 400
    assert "datasets folder" in response.content.decode()
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"backbone": "xception", "image_size": 64}, "xception needs an image size between 71 and 1024 pixels"),
        ({"weights": "no-such-weights.h5"}, "The weights file “no-such-weights.h5” does not exist in the weights folder"),
    ],
)
def test_settings_the_backbone_cannot_use_are_refused(admin_client, dataset_folder, fields, message):
    folder = dataset_folder({"covid": 8, "normal": 8})
    response = start(admin_client, dataset=folder.name, **fields)
    assert response.status_code == 400 and message in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_a_good_folder_queues_a_job_with_what_was_checked(admin_client, administrator, dataset_folder, django_capture_on_commit_callbacks):
    folder = dataset_folder({"covid": 9, "normal": 8})
    with django_capture_on_commit_callbacks() as callbacks:
        response = start(admin_client, dataset=folder.name)
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("ml:job_detail", args=[job.pk])
    assert job.status == TrainingJob.Status.QUEUED and job.created_by == administrator
    assert job.dataset_path == folder.name
    assert job.dataset_summary["classes"] == {"covid": 9, "normal": 8}
    assert job.dataset_summary["layout"] == "class-folders"
    assert sum(job.dataset_summary["split_counts"]["test"].values()) >= 2
    assert job.parameters == {"backbone": "xception", "epochs": 2, "image_size": 71, "batch_size": 4, "weights": "none", "seed": 42}
    assert job.total_epochs == 2
    assert len(callbacks) == 1  # the task is sent only once the job row is committed
    page = admin_client.get(response.url).content.decode()
    assert "Waiting for the training worker" in page and "covid 9, normal 8" in page


def test_cancelling_a_queued_job_ends_it_at_once(admin_client, dataset_folder):
    folder = dataset_folder({"covid": 8, "normal": 8})
    job = services.start_training_job(actor=None, dataset=folder.name, epochs=1, image_size=71, weights="none", enqueue=False)
    response = admin_client.post(reverse("ml:job_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.CANCELLED and job.finished_at
    assert services.execute_training_job(job.pk) is None  # a late delivery of its task does nothing
    response = admin_client.post(reverse("ml:job_cancel", args=[job.pk]), follow=True)
    assert "has already cancelled" in response.content.decode()


def test_cancelling_a_running_job_asks_its_worker_to_stop(admin_client, dataset_folder):
    job = TrainingJob.objects.create(dataset_path="x", parameters={}, status=TrainingJob.Status.RUNNING, total_epochs=3)
    admin_client.post(reverse("ml:job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.RUNNING and job.cancel_requested
    assert "Stopping at the next check" in admin_client.get(reverse("ml:job_progress", args=[job.pk])).content.decode()


def test_a_dataset_folder_that_is_a_link_to_elsewhere_is_refused(admin_client, tmp_path, settings):
    elsewhere = make_dataset("linked-source", {"covid": 8, "normal": 8}, root=tmp_path)
    link = settings.DATASETS_ROOT / f"linked-{tmp_path.name}"
    link.symlink_to(elsewhere, target_is_directory=True)
    try:
        response = start(admin_client, dataset=link.name)
        assert response.status_code == 400
        assert f"“{link.name}” is a link to a place outside the datasets folder" in response.content.decode()
        assert not TrainingJob.objects.exists()
    finally:
        link.unlink()


REAL_DATA = SHARED_DATA / "cxr-dev"


@pytest.mark.real_data
@needs(REAL_DATA)
def test_the_real_development_set_passes_the_check_with_its_patient_manifest(settings):
    # A link into the datasets folder would be refused (nothing is read through a link leading out),
    # so the shared data's own parent is the datasets folder here.
    settings.DATASETS_ROOT = REAL_DATA.parent
    check = services.check_dataset_folder(REAL_DATA.name)
    assert check.classes == {"covid": 950, "normal": 950}
    assert check.details["grouped_by_patient"] is True and check.details["layout"] == "class-folders"


# --- starting weights: refused before anything is queued (issues 7 and 10) --------------------

@pytest.fixture
def weights_folder(tmp_path, settings):
    settings.ML_WEIGHTS_DIR = tmp_path / "weights"
    settings.ML_WEIGHTS_DIR.mkdir()
    return settings.ML_WEIGHTS_DIR


def test_imagenet_without_internet_is_refused_in_one_sentence(admin_client, dataset_folder, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    settings.ML_IMAGENET_AVAILABLE = False
    response = start(admin_client, dataset=dataset_folder({"covid": 8, "normal": 8}).name, weights="imagenet")
    page = response.content.decode()
    assert response.status_code == 400
    assert "ImageNet weights cannot be downloaded here" in page and "Traceback" not in page
    assert not TrainingJob.objects.exists()


def test_imagenet_already_in_the_keras_cache_is_accepted_offline(admin_client, dataset_folder, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    settings.ML_IMAGENET_AVAILABLE = False
    cached = tmp_path / "keras" / "models" / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stand-in")
    response = start(admin_client, dataset=dataset_folder({"covid": 8, "normal": 8}).name, weights="imagenet")
    assert response.status_code == 302
    assert TrainingJob.objects.get().parameters["weights"] == "imagenet"


def test_a_weights_file_in_the_weights_folder_is_accepted(admin_client, dataset_folder, weights_folder):
    (weights_folder / "small.weights.h5").write_bytes(b"stand-in")
    response = start(admin_client, dataset=dataset_folder({"covid": 8, "normal": 8}).name, weights="small.weights.h5")
    assert response.status_code == 302
    assert TrainingJob.objects.get().parameters["weights"] == str((weights_folder / "small.weights.h5").resolve())


@pytest.mark.parametrize("weights", ["/etc/passwd", "../outside.h5", "leaving-link.h5"])
def test_weights_outside_the_weights_folder_are_refused(admin_client, dataset_folder, weights_folder, weights):
    (weights_folder.parent / "outside.h5").write_bytes(b"stand-in")
    (weights_folder / "leaving-link.h5").symlink_to(weights_folder.parent / "outside.h5")
    response = start(admin_client, dataset=dataset_folder({"covid": 8, "normal": 8}).name, weights=weights)
    assert response.status_code == 400
    assert f"The weights file “{weights}” is outside the weights folder" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_the_api_refuses_weights_outside_the_folder_as_json(administrator, dataset_folder, weights_folder):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(administrator)
    response = api.post("/api/v1/training-jobs/", {**FORM, "dataset": dataset_folder({"covid": 8, "normal": 8}).name, "weights": "/etc/passwd"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "training_refused"
    assert not TrainingJob.objects.exists()


def with_sources(folder):
    """A details.csv giving each film a source: covid from Alpha or Gamma, normal from Beta or Delta (every third film)."""
    lines = ["filename,label,patient_id,origin"]
    for label, (usual, third) in (("covid", ("Alpha (Spain)", "Gamma")), ("normal", ("Beta", "Delta (USA)"))):
        for number, path in enumerate(sorted((folder / label).iterdir())):
            lines.append(f"{label}/{path.name},{label},,{third if number % 3 == 0 else usual}")
    (folder / "details.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_an_unknown_held_out_source_is_refused_with_the_sources_there_are(admin_client, dataset_folder):
    folder = with_sources(dataset_folder({"covid": 9, "normal": 9}))
    response = start(admin_client, dataset=folder.name, held_out_sources="Gamma, NIH")
    assert response.status_code == 400
    assert "“NIH” is not a source of this dataset; its sources are: Alpha; Beta; Delta; Gamma." in response.content.decode()
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db(transaction=True)  # the job's heartbeat thread has its own connection: the job row must be committed
def test_a_job_with_held_out_sources_trains_without_them_and_the_report_shows_them(admin_client, dataset_folder, settings, monkeypatch):
    """Through the form, the job, the engine and the registered version to the report page (VGG16 at 32 px, 1 epoch)."""
    settings.ML_EVALUATION_SET = settings.ML_EXTERNAL_EVALUATION_SET = ""
    # This test runs the job itself below. Queued, it could be taken by a Celery worker another test
    # of the session started (the PostgreSQL + Redis pass has one), which cannot see this test's folder.
    monkeypatch.setattr("ml.services.training.lifecycle.enqueue_on_commit", lambda *jobs: None)
    folder = with_sources(dataset_folder({"covid": 12, "normal": 12}))
    start(admin_client, dataset=folder.name, held_out_sources="Gam, Delta", backbone="vgg16", image_size=32, epochs=1)
    job = TrainingJob.objects.get()
    assert job.parameters["held_out_sources"] == ["Gamma", "Delta"]
    assert job.dataset_summary["held_out"]["counts"] == {"Delta": {"covid": 0, "normal": 4}, "Gamma": {"covid": 4, "normal": 0}}
    assert job.dataset_summary["classes"] == {"covid": 8, "normal": 8}  # what is left to split
    assert "Gamma (covid 4, normal 0)" in admin_client.get(reverse("ml:job_detail", args=[job.pk])).content.decode()

    assert services.execute_training_job(job.pk).status == TrainingJob.Status.SUCCEEDED
    version = job.versions.get()
    held = version.record["source_held_out"]
    assert held["sources"] == ["Gamma", "Delta"] and held["n"] == 8 and held["auc_within_a_source"] is False
    report = admin_client.get(reverse("ml:version_report", args=[version.pk])).content.decode()
    assert "Trained without the films of Gamma, Delta" in report and "this AUC measures telling the sources apart" in report


def test_the_api_takes_held_out_sources_as_a_list(administrator, dataset_folder):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(administrator)
    folder = with_sources(dataset_folder({"covid": 9, "normal": 9}))
    refused = api.post("/api/v1/training-jobs/", {**FORM, "dataset": folder.name, "held_out_sources": ["NIH"]}, format="json")
    assert refused.status_code == 400 and "“NIH” is not a source of this dataset" in refused.json()["error"]
    accepted = api.post("/api/v1/training-jobs/", {**FORM, "dataset": folder.name, "held_out_sources": ["Gamma"]}, format="json")
    assert accepted.status_code == 202, accepted.json()
    assert TrainingJob.objects.get().parameters["held_out_sources"] == ["Gamma"]
