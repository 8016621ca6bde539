"""Nothing outside the datasets folder is read through a symbolic link: a link that leads out of it
(here into the scan folder, where patients' X-rays are) is refused with a sentence by the dataset
check, training and evaluation alike; a link that stays inside it is fine."""
import os

import pytest
from django.conf import settings
from django.urls import reverse

from diagnosis import storage
from ml import services
from ml.models import EvaluationRun, TrainingJob
from tests.images import png_bytes
from tests.ml.conftest import make_dataset

pytestmark = pytest.mark.django_db

TRAINING = {"source": "folder", "backbone": "xception", "epochs": 2, "image_size": 71, "batch_size": 4, "weights": "none"}


@pytest.fixture
def scan_file():
    name = storage.write(png_bytes(96, seed=7), "png")
    yield storage.local_path(name)  # the scan folder, or this host's cache of the bucket: no link may lead into either
    storage.delete(name)


def test_a_training_job_on_a_folder_holding_a_link_into_the_scan_folder_is_refused(admin_client, dataset_folder, scan_file):
    folder = dataset_folder({"covid": 8, "normal": 8})
    (folder / "covid" / "patient.png").symlink_to(scan_file)
    response = admin_client.post(reverse("ml:job_create"), {**TRAINING, "dataset": folder.name})
    assert response.status_code == 400
    expected = f"“{folder.name}/covid/patient.png” is a link to a place outside the datasets folder ({settings.DATASETS_ROOT.resolve()})"
    assert expected in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_a_linked_class_folder_is_refused_through_the_api_too(client, administrator, dataset_folder, tmp_path):
    from tests.api import token_headers

    folder = dataset_folder({"covid": 8, "normal": 8})
    outside = make_dataset("outside", {"extra": 3}, root=tmp_path) / "extra"
    os.symlink(outside, folder / "extra", target_is_directory=True)
    response = client.post(reverse("api:training_job_list"), {**TRAINING, "dataset": folder.name}, content_type="application/json", **token_headers(administrator))
    assert response.status_code == 400 and response.json()["code"] == "training_refused"
    assert f"“{folder.name}/extra” is a link" in response.json()["error"]


def test_a_link_that_stays_inside_the_datasets_folder_is_read(dataset_folder):
    source = dataset_folder({"covid": 8, "normal": 8})
    folder = dataset_folder({"covid": 8, "normal": 8})
    (folder / "covid" / "shared.png").symlink_to(source / "covid" / "covid-0.png")
    assert services.check_dataset_folder(folder.name).classes["covid"] == 9


def test_an_evaluation_set_with_a_link_out_is_refused_when_asked_for_and_when_run(admin_client, make_version, evaluation_set, scan_file):
    version = make_version()
    link = evaluation_set / "covid" / "patient.png"
    link.symlink_to(scan_file)
    response = admin_client.post(reverse("ml:version_evaluate", args=[version.pk]), follow=True)
    assert "evaluation/covid/patient.png” is a link to a place outside the datasets folder" in response.content.decode()
    assert not EvaluationRun.objects.exists()
    # Asked for while the folder was clean, run after a link appeared: the run fails with the sentence.
    link.unlink()
    run = services.start_evaluation(version, enqueue=False)
    link.symlink_to(scan_file)
    run = services.execute_evaluation(run.pk)
    assert run.status == EvaluationRun.Status.FAILED and "is a link to a place outside the datasets folder" in run.failure_reason
    # The models page reads the set's files to fingerprint it: it says why it cannot, and does not read them.
    page = admin_client.get(reverse("ml:version_list")).content.decode()
    assert "is a link to a place outside the datasets folder" in page
