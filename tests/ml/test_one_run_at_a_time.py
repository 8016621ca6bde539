"""One derivation or evaluation of a version at a time: a second request while one is queued or
running answers 409 naming that run, and queues nothing; once it has ended, a new one is accepted."""
import pytest
from django.urls import reverse

from ml.models import DerivationRun, EvaluationRun

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page, runs", [("ml:version_derive_int8", DerivationRun), ("ml:version_evaluate", EvaluationRun)], ids=["int8", "evaluation"])
def test_a_second_request_while_one_is_queued_is_a_409_naming_it(admin_client, make_version, evaluation_set, page, runs):
    version = make_version()
    url = reverse(page, args=[version.pk])
    assert admin_client.post(url).status_code == 302
    first = runs.objects.get()
    again = admin_client.post(url)
    assert again.status_code == 409
    assert f"is already queued (run {first.pk})" in again.content.decode()
    assert runs.objects.count() == 1

    runs.objects.filter(pk=first.pk).update(status=runs.Status.FAILED)
    assert admin_client.post(url).status_code == 302
    assert runs.objects.count() == 2
