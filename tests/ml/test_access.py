"""Only administrators start jobs, promote and roll back: everyone else is refused before anything happens."""
import pytest
from django.urls import reverse

from ml.models import ModelVersion, Promotion, TrainingJob

pytestmark = pytest.mark.django_db


def admin_urls(version_id, job_id):
    """Every model-lifecycle page and endpoint, with the method it is used with."""
    return [
        ("get", reverse("ml:version_list"), {}),
        ("get", reverse("ml:roc_plot"), {}),
        ("get", reverse("ml:version_detail", args=[version_id]), {}),
        ("get", reverse("ml:version_promote", args=[version_id]), {}),
        ("post", reverse("ml:version_promote", args=[version_id]), {"reason": "x"}),
        ("post", reverse("ml:version_evaluate", args=[version_id]), {}),
        ("get", reverse("ml:job_list"), {}),
        ("get", reverse("ml:job_create"), {}),
        ("post", reverse("ml:job_create"), {"source": "folder", "dataset": "anything", "backbone": "xception", "epochs": 1, "image_size": 71, "batch_size": 4, "weights": "none"}),
        ("get", reverse("ml:job_detail", args=[job_id]), {}),
        ("get", reverse("ml:job_progress", args=[job_id]), {}),
        ("post", reverse("ml:job_cancel", args=[job_id]), {}),
    ]


@pytest.fixture
def version_and_job(make_version):
    version = make_version()
    job = TrainingJob.objects.create(dataset_path="somewhere", parameters={"backbone": "xception"}, total_epochs=2)
    return version, job


def test_clinicians_get_403_from_every_model_page_and_endpoint(clinician_client, version_and_job):
    version, job = version_and_job
    for method, url, data in admin_urls(version.pk, job.pk):
        response = getattr(clinician_client, method)(url, data)
        assert response.status_code == 403, (method, url, response.status_code)
    version.refresh_from_db()
    job.refresh_from_db()
    assert version.status == ModelVersion.Status.CANDIDATE and not Promotion.objects.exists()
    assert job.status == TrainingJob.Status.QUEUED and not job.cancel_requested
    assert TrainingJob.objects.count() == 1


def test_users_without_a_role_get_403_and_anonymous_users_the_login_page(client, user_without_role, version_and_job):
    version, job = version_and_job
    for method, url, data in admin_urls(version.pk, job.pk):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), (method, url)
    client.force_login(user_without_role)
    for method, url, data in admin_urls(version.pk, job.pk):
        assert getattr(client, method)(url, data).status_code == 403, (method, url)


def test_administrators_open_every_model_page(admin_client, version_and_job):
    version, job = version_and_job
    for method, url, _data in admin_urls(version.pk, job.pk):
        if method == "get" and url != reverse("ml:roc_plot"):
            response = admin_client.get(url)
            assert response.status_code == 200, (url, response.status_code)
    # The comparison plot exists only once a version has been measured on the evaluation set.
    assert admin_client.get(reverse("ml:roc_plot")).status_code == 404


def test_demo_versions_are_marked_on_every_page_that_names_them(admin_client, make_version):
    demo = make_version(synthetic=True)
    TrainingJob.objects.create(dataset_path="synthetic", parameters={}, status=TrainingJob.Status.SUCCEEDED)
    for url in [reverse("ml:version_list"), reverse("ml:version_detail", args=[demo.pk]), reverse("ml:version_promote", args=[demo.pk])]:
        assert b"DEMO" in admin_client.get(url).content, url
    real = make_version(synthetic=False)
    assert b"DEMO" not in admin_client.get(reverse("ml:version_detail", args=[real.pk])).content
