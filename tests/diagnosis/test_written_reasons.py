"""A reason kept in the audit trail is written by a person: a promotion override or a scan move
whose reason is only zero-width, format or space characters is refused like an empty one."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from diagnosis.models import AuditEvent, Patient, Scan
from ml.models import ModelVersion, Promotion
from tests.api import assert_json_error, token_headers
from tests.ml.test_promotion_safeguards import measured, reference  # noqa: F401  (reference: a fixture)

pytestmark = pytest.mark.django_db
INVISIBLE = ["\u200b", "\u200b\u200c\u200d\u2060", "\u00a0\u200b\u3000", "\u202e\ufeff", "\u2028"]


@pytest.mark.parametrize("reason", INVISIBLE)
def test_an_override_reason_of_invisible_characters_is_refused(administrator, make_version, reference, reason):  # noqa: F811
    api = APIClient()
    api.force_authenticate(administrator)
    version = measured(make_version(), reference, 0.44)
    refused = api.post(reverse("api:version_promote", args=[version.pk]), {"reason": reason, "override": True}, format="json")
    assert refused.status_code == 400  # a sentence: "needs a written reason", or the empty field once DRF trimmed it
    assert not Promotion.objects.exists() and ModelVersion.objects.get(pk=version.pk).status == "candidate"


@pytest.mark.parametrize("reason", INVISIBLE)
def test_a_move_reason_of_invisible_characters_is_refused(client, clinician, patient, add_scan, reason):
    right = Patient.objects.create(site=patient.site, medical_record_number="MRN-0002", family_name="Smith", given_name="John")
    scan = add_scan(patient, Scan.Status.DONE)
    client.defaults.update(token_headers(clinician))
    response = client.post(reverse("api:scan_move", args=[scan.pk]), {"patient": str(right.pk), "reason": reason}, content_type="application/json")
    assert_json_error(response, 400)
    assert Scan.objects.get(pk=scan.pk).patient == patient
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SCAN_MOVED).exists()


def test_a_reason_with_a_visible_character_among_invisible_ones_is_kept_as_written(client, clinician, patient, add_scan):
    right = Patient.objects.create(site=patient.site, medical_record_number="MRN-0002", family_name="Smith", given_name="John")
    scan = add_scan(patient, Scan.Status.DONE)
    client.defaults.update(token_headers(clinician))
    response = client.post(reverse("api:scan_move", args=[scan.pk]), {"patient": str(right.pk), "reason": "\u200bwrong bed\u200b"}, content_type="application/json")
    assert response.status_code == 200
    assert AuditEvent.objects.get(action=AuditEvent.Action.SCAN_MOVED).details["reason"] == "\u200bwrong bed\u200b"
