"""The five query strings (and one header replay) that answered 500: a NUL byte copied into the audit
trail or typed into Django admin's search, a far date, a page number past any database offset, a
`seen` id of non-ASCII digits, and an Idempotency-Key replayed after its scan was moved."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.models import AuditEvent, Patient, Scan
from diagnosis.paging import CappedPaginator
from tests.api import assert_json_error, token_headers
from tests.diagnosis.test_audit_trail import result  # noqa: F401  (a fixture: a result whose image and heatmap are stored)
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/?foo=%00", "/api/v1/worklist/?%00=1", "/audit/export.csv?foo=%00", "/patients/?page=%001"])
def test_a_nul_byte_in_the_query_string_reaches_the_trail_without_it(client, administrator, url):
    client.force_login(administrator)
    response = client.get(url)
    assert response.status_code == 200
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)
    row = AuditEvent.objects.latest("id")
    assert row.actor == administrator
    assert "\\u0000" not in json.dumps(row.details) and "\x00" not in json.dumps(row.details, ensure_ascii=False)


def test_a_nul_byte_in_django_admins_patient_search_is_refused_and_its_row_written(client, administrator, patient):
    client.force_login(administrator)
    response = client.get(reverse("admin:diagnosis_patient_changelist") + "?q=a%00")
    assert response.status_code == 200 and b"Null characters are not allowed" in response.content  # Django admin's own sentence
    row = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_LISTED)
    assert row.details["query"] == "a"


def test_a_far_date_is_refused_with_a_sentence_on_the_worklist_its_api_and_its_live_updates(clinician_client, clinician):
    page = clinician_client.get(reverse("diagnosis:home") + "?date_to=9999-12-31")
    assert page.status_code == 200 and "Give a date between 1900 and 2199." in page.content.decode()
    news = clinician_client.get(reverse("diagnosis:worklist_news") + "?date_to=9999-12-31&since=2026-01-01T00:00:00Z")
    assert news.status_code == 204
    api = clinician_client.get(reverse("api:worklist") + "?date_to=9999-12-31&date_from=0001-01-01", **token_headers(clinician))
    body = assert_json_error(api, 400)
    assert "Give a date between 1900 and 2199." in json.dumps(body)


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "0001-01-01", "9999-12-31T23:59:59", "²"])
def test_a_live_update_since_a_time_off_the_calendar_or_without_an_offset_is_no_news(clinician_client, patient, add_scan, since, settings):
    settings.TIME_ZONE = "Pacific/Kiritimati"  # +14:00: a naive year-1 time leaves the calendar in UTC
    add_scan(patient)
    assert clinician_client.get(reverse("diagnosis:worklist_news"), {"since": since}).status_code == 204


def test_a_page_number_past_any_database_offset_shows_the_first_page_of_a_long_worklist(clinician_client, patient, add_scan, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 2)  # "more than 500 scans" with three
    scans = [add_scan(patient, minutes_ago=minutes) for minutes in range(3)]
    response = clinician_client.get(reverse("diagnosis:home") + "?page=1000000000000000000")
    assert response.status_code == 200 and response.context["page"].number == 1
    assert [str(scan.pk) for scan in scans] == AuditEvent.objects.latest("id").details["scans"]


@pytest.mark.parametrize("seen", ["²", "١٢", "9" * 30, "-1"])
def test_a_seen_id_that_is_no_number_is_its_own_row(clinician_client, clinician, result, seen):  # noqa: F811
    prediction = result.predictions.get()
    for url, action in ((reverse("diagnosis:scan_image", args=[result.pk]), AuditEvent.Action.SCAN_IMAGE_VIEWED),
                        (reverse("diagnosis:scan_heatmap", args=[result.pk, prediction.pk]), AuditEvent.Action.HEATMAP_VIEWED)):
        assert clinician_client.get(url, {"seen": seen}).status_code == 200
        assert AuditEvent.objects.latest("id").action == action


def test_replaying_an_upload_whose_scan_was_moved_to_another_site_is_a_409(client, clinician, administrator, patient, site_b):
    api = token_headers(clinician)

    def upload():
        image = SimpleUploadedFile("x.png", png_bytes())
        return client.post(reverse("api:patient_scans", args=[patient.pk]), {"image": image}, HTTP_IDEMPOTENCY_KEY="ris-order-7", **api)

    assert upload().status_code == 202
    elsewhere = Patient.objects.create(site=site_b, medical_record_number="CG-1", family_name="Lind", given_name="Ola")
    client.force_login(administrator)
    moved = client.post(reverse("diagnosis:scan_move", args=[Scan.objects.get().pk]), {"medical_record_number": "CG-1", "reason": "Filed at the wrong site"})
    assert moved.status_code in (200, 302) and Scan.objects.get().patient == elsewhere
    client.logout()
    replay = upload()
    assert "has since been moved to another patient" in assert_json_error(replay, 409, "idempotency_key_reused")["error"]
    assert Scan.objects.count() == 1


def test_a_nul_byte_as_a_token_id_revokes_nothing_on_the_page_and_in_the_api(client, clinician):
    """PostgreSQL refuses NUL in a query's text (SQLite does not, so this fails before the fix on
    the PostgreSQL pass only)."""
    client.force_login(clinician)
    assert client.post(reverse("api_tokens"), {"revoke": "a\x00b"}).status_code == 302
    assert_json_error(client.delete("/api/v1/tokens/a%00b/"), 404)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REVOKED).exists()
