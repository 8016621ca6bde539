"""Promotions, training jobs and evaluation runs are in the portal's one audit trail, with who,
how (web, api) and what changed."""
import pytest
from django.urls import reverse

from diagnosis.models import AuditEvent
from tests.api import token_headers

pytestmark = pytest.mark.django_db

TRAINING = {"backbone": "xception", "epochs": 2, "image_size": 71, "batch_size": 4, "weights": "none"}


def test_a_promotion_through_the_api_is_one_row_saying_from_and_to(client, administrator, make_version):
    first, second = make_version(), make_version()
    headers = token_headers(administrator)
    for version in (first, second):
        url = reverse("api:version_promote", args=[version.pk])
        # Test versions have no evaluation, so the safeguards object and the override is recorded too.
        assert client.post(url, {"reason": "Better", "override": True}, content_type="application/json", **headers).status_code == 200
    rows = list(AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_PROMOTED).order_by("id"))
    assert [(row.actor, row.via) for row in rows] == [(administrator, "api")] * 2
    details = rows[1].details
    assert (details["version"], details["changes"], details["rollback"], details["reason"]) == (second.pk, {"active": [first.pk, second.pk]}, False, "Better")
    assert details["overridden"] is True and details["concerns"]


def test_a_refused_promotion_leaves_no_row(client, administrator, make_version):
    version = make_version()
    url = reverse("api:version_promote", args=[version.pk])
    client.post(url, {"reason": "Once", "override": True}, content_type="application/json", **token_headers(administrator))
    assert client.post(url, {"reason": "Twice", "override": True}, content_type="application/json", **token_headers(administrator)).status_code == 400
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MODEL_PROMOTED).count() == 1


def test_starting_and_cancelling_a_training_job_are_rows(client, administrator, dataset_folder):
    folder = dataset_folder({"covid": 9, "normal": 8})
    headers = token_headers(administrator)
    job_id = client.post(reverse("api:training_job_list"), {"dataset": folder.name, **TRAINING}, content_type="application/json", **headers).json()["id"]
    client.post(reverse("api:training_job_cancel", args=[job_id]), **headers)
    started = AuditEvent.objects.get(action=AuditEvent.Action.TRAINING_STARTED)
    assert (started.actor, started.via, started.details["job"], started.details["dataset"]) == (administrator, "api", job_id, folder.name)
    cancelled = AuditEvent.objects.get(action=AuditEvent.Action.TRAINING_CANCELLED)
    assert cancelled.details == {"job": job_id, "changes": {"status": ["queued", "cancelled"]}}


def test_asking_for_an_evaluation_on_the_page_is_a_row(admin_client, administrator, make_version, evaluation_set):
    version = make_version()
    admin_client.post(reverse("ml:version_evaluate", args=[version.pk]))
    row = AuditEvent.objects.get(action=AuditEvent.Action.EVALUATION_STARTED)
    assert (row.actor, row.via, row.details["version"], row.details["dataset"]) == (administrator, "web", version.pk, "evaluation")
