"""Model versions and training jobs through /api/v1/: clinicians read versions; only administrators
promote and train."""
import pytest
from django.urls import reverse

from ml.models import ModelVersion, Promotion, TrainingJob
from tests.api import assert_json_error, token_headers


@pytest.fixture
def admin_api(client, administrator):
    client.defaults.update(token_headers(administrator))
    return client


@pytest.fixture
def clinician_api(client, clinician):
    client.defaults.update(token_headers(clinician))
    return client


TRAINING = {"backbone": "xception", "epochs": 2, "image_size": 71, "batch_size": 4, "weights": "none"}


def test_clinicians_list_and_read_versions(clinician_api, make_version):
    version = make_version(synthetic=True)
    listed = clinician_api.get(reverse("api:version_list")).json()
    assert [row["id"] for row in listed["results"]] == [version.pk]
    body = clinician_api.get(reverse("api:version_detail", args=[version.pk])).json()
    assert (body["name"], body["demo"], body["status"]) == (version.label, True, "candidate")


def test_an_unknown_version_is_a_json_404(clinician_api):
    assert_json_error(clinician_api.get(reverse("api:version_detail", args=[999999])), 404, "not_found")


def test_an_administrator_promotes_with_a_reason(admin_api, administrator, make_version):
    version = make_version()
    response = admin_api.post(reverse("api:version_promote", args=[version.pk]), {"reason": "Better sensitivity", "override": True}, content_type="application/json")
    assert response.status_code == 200 and response.json()["status"] == "active"
    promotion = Promotion.objects.get()
    assert (promotion.to_version, promotion.actor, promotion.reason) == (version, administrator, "Better sensitivity")


def test_promoting_the_active_version_again_is_refused_in_a_sentence(admin_api, make_version):
    version = make_version()
    url = reverse("api:version_promote", args=[version.pk])
    admin_api.post(url, {"reason": "first", "override": True}, content_type="application/json")
    assert "already the active version" in assert_json_error(admin_api.post(url, {"reason": "again", "override": True}, content_type="application/json"), 400)["error"]


def test_a_clinician_cannot_promote(clinician_api, make_version):
    version = make_version()
    response = clinician_api.post(reverse("api:version_promote", args=[version.pk]), {"reason": "x"}, content_type="application/json")
    assert_json_error(response, 403, "permission_denied")
    assert ModelVersion.objects.get().status == ModelVersion.Status.CANDIDATE


def test_a_clinician_cannot_start_or_list_training(clinician_api, dataset_folder):
    folder = dataset_folder({"covid": 8, "normal": 8})
    assert_json_error(clinician_api.post(reverse("api:training_job_list"), {"dataset": folder.name, **TRAINING}, content_type="application/json"), 403)
    assert_json_error(clinician_api.get(reverse("api:training_job_list")), 403)
    assert not TrainingJob.objects.exists()


def test_an_administrator_starts_training_and_polls_its_progress(admin_api, dataset_folder):
    folder = dataset_folder({"covid": 9, "normal": 8})
    response = admin_api.post(reverse("api:training_job_list"), {"dataset": folder.name, **TRAINING}, content_type="application/json")
    assert response.status_code == 202
    job = TrainingJob.objects.get()
    polled = admin_api.get(response["Location"]).json()
    assert (polled["id"], polled["status"], polled["progress_percent"], polled["total_epochs"]) == (job.pk, "queued", 0, 2)


def test_a_refused_training_request_is_a_sentence(admin_api, dataset_folder):
    folder = dataset_folder({"covid": 8, "normal": 8})
    response = admin_api.post(reverse("api:training_job_list"), {"dataset": folder.name, **TRAINING, "image_size": 64}, content_type="application/json")
    assert "needs an image size between 71" in assert_json_error(response, 400, "training_refused")["error"]
    assert not TrainingJob.objects.exists()


def test_an_administrator_cancels_a_queued_job_once(admin_api, dataset_folder):
    folder = dataset_folder({"covid": 9, "normal": 8})
    job_id = admin_api.post(reverse("api:training_job_list"), {"dataset": folder.name, **TRAINING}, content_type="application/json").json()["id"]
    url = reverse("api:training_job_cancel", args=[job_id])
    assert admin_api.post(url).json()["status"] == "cancelled"
    assert_json_error(admin_api.post(url), 409, "already_finished")
