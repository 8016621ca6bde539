"""An administrator's model lifecycle actions, on the pages and through the API, are in the audit
trail with the address they came from: promoting, rolling back, starting and cancelling training,
asking for an evaluation. Each request comes from its own address; the row it writes must name it."""
import pytest
from django.urls import reverse

from diagnosis.models import AuditEvent
from ml import services
from tests.api import token_headers

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
WEB_ADDRESS, API_ADDRESS = "10.1.2.3", "2001:db8::7"
TRAINING = {"backbone": "xception", "epochs": 2, "image_size": 71, "batch_size": 4, "weights": "none"}


@pytest.fixture
def versions(make_version):
    """Two versions, the first active before the second (so promoting the first again is a rollback).
    Set up through the service without a request, as a command would: those rows have no address."""
    first, second = make_version(), make_version()
    for version in (first, second):
        services.promote_version(version.pk, reason="test set-up", override=True)
    return first, second


@pytest.fixture
def queued_job(dataset_folder):
    folder = dataset_folder({"covid": 8, "normal": 8})
    return services.start_training_job(actor=None, dataset=folder.name, epochs=1, image_size=71, weights="none", enqueue=False)


def the_new_row(action):
    """The row the request wrote: the newest of its action (set-up rows come from the service, with no address)."""
    return AuditEvent.objects.filter(action=action).latest("id")


def test_promoting_and_rolling_back_on_the_page_record_the_address(admin_client, administrator, versions):
    first, second = versions
    # Back to the first, then to the second again: both were active before, so both are rollbacks.
    for version, address in ((first, WEB_ADDRESS), (second, "10.9.8.7")):
        response = admin_client.post(reverse("ml:version_promote", args=[version.pk]), {"reason": "checked", "override": "on"}, REMOTE_ADDR=address)
        assert response.status_code == 302, response.content[:500]
        row = the_new_row(Action.MODEL_PROMOTED)
        assert (row.actor, row.via, row.ip_address, row.details["version"], row.details["rollback"]) == (administrator, "web", address, version.pk, True)


def test_promoting_through_the_api_records_the_address(client, administrator, versions):
    first, _ = versions
    response = client.post(reverse("api:version_promote", args=[first.pk]), {"reason": "checked", "override": True},
                           content_type="application/json", REMOTE_ADDR=API_ADDRESS, **token_headers(administrator))
    assert response.status_code == 200, response.content[:500]
    row = the_new_row(Action.MODEL_PROMOTED)
    assert (row.actor, row.via, row.ip_address, row.details["rollback"]) == (administrator, "api", API_ADDRESS, True)


def test_starting_training_on_the_page_and_through_the_api_records_the_address(client, admin_client, administrator, dataset_folder):
    folder = dataset_folder({"covid": 8, "normal": 8})
    page = admin_client.post(reverse("ml:job_create"), {"source": "folder", "dataset": folder.name, **TRAINING}, REMOTE_ADDR=WEB_ADDRESS)
    assert page.status_code == 302, page.content[:500]
    row = the_new_row(Action.TRAINING_STARTED)
    assert (row.actor, row.via, row.ip_address) == (administrator, "web", WEB_ADDRESS)

    api = client.post(reverse("api:training_job_list"), {"dataset": folder.name, **TRAINING}, content_type="application/json",
                      REMOTE_ADDR=API_ADDRESS, **token_headers(administrator))
    assert api.status_code == 202, api.content[:500]
    row = the_new_row(Action.TRAINING_STARTED)
    assert (row.actor, row.via, row.ip_address, row.details["job"]) == (administrator, "api", API_ADDRESS, api.json()["id"])


@pytest.mark.parametrize("via", ["web", "api"])
def test_cancelling_training_records_the_address(client, administrator, queued_job, via):
    if via == "web":
        client.force_login(administrator)
        response = client.post(reverse("ml:job_cancel", args=[queued_job.pk]), REMOTE_ADDR=WEB_ADDRESS)
    else:
        response = client.post(reverse("api:training_job_cancel", args=[queued_job.pk]), REMOTE_ADDR=API_ADDRESS, **token_headers(administrator))
    assert response.status_code in (200, 302), response.content[:500]
    row = the_new_row(Action.TRAINING_CANCELLED)
    assert (row.actor, row.via, row.ip_address, row.details["job"]) == (administrator, via, WEB_ADDRESS if via == "web" else API_ADDRESS, queued_job.pk)


def test_asking_for_an_evaluation_on_the_page_records_the_address(admin_client, administrator, make_version, evaluation_set):
    version = make_version()
    response = admin_client.post(reverse("ml:version_evaluate", args=[version.pk]), REMOTE_ADDR=WEB_ADDRESS)
    assert response.status_code == 302
    row = the_new_row(Action.EVALUATION_STARTED)
    assert (row.actor, row.via, row.ip_address, row.details["version"]) == (administrator, "web", WEB_ADDRESS, version.pk)


def test_a_command_line_action_has_no_address(make_version):
    """No request, no address: what the trail shows for `manage.py` and the workers."""
    services.promote_version(make_version().pk, reason="from the command line", override=True)
    row = the_new_row(Action.MODEL_PROMOTED)
    assert (row.actor, row.via, row.ip_address) == (None, "command", None)
