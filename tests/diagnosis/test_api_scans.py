"""Scans through /api/v1/: 202 with an address to poll, Idempotency-Key retries, a patient's scans."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.models import Scan
from tests.api import assert_json_error, token_headers
from tests.conftest import stored_files
from tests.images import png_bytes


@pytest.fixture
def api(client, clinician):
    client.defaults.update(token_headers(clinician))
    return client


def upload(api, patient, data=None, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    image = SimpleUploadedFile("x.png", data or png_bytes())
    return api.post(reverse("api:patient_scans", args=[patient.pk]), {"image": image}, **headers)


def test_upload_is_accepted_with_an_address_to_poll(api, patient):
    response = upload(api, patient)
    assert response.status_code == 202
    scan_id = response.json()["id"]
    assert response["Location"] == response.json()["status_url"]
    polled = api.get(response["Location"])
    assert polled.status_code == 200
    assert polled.json()["id"] == scan_id and polled.json()["status"] == "queued"


def test_a_retry_with_the_same_key_returns_the_first_scan_and_creates_nothing(api, patient):
    first = upload(api, patient, key="ris-order-42")
    files = stored_files()
    retry = upload(api, patient, key="ris-order-42")
    assert retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert retry["Idempotent-Replayed"] == "true"
    assert Scan.objects.count() == 1
    assert stored_files() == files


def test_a_key_reused_for_another_image_is_a_409(api, patient):
    upload(api, patient, key="ris-order-42")
    response = upload(api, patient, data=png_bytes(seed=7), key="ris-order-42")
    assert "already used for a different upload" in assert_json_error(response, 409, "idempotency_key_reused")["error"]
    assert Scan.objects.count() == 1


def test_the_same_key_from_another_user_is_their_own(client, api, patient, site_a):
    from diagnosis import roles
    from tests.conftest import make_user

    upload(api, patient, key="shared-key")
    colleague = make_user("dr_c", roles.CLINICIANS, site_a)
    client.defaults.update(token_headers(colleague))
    assert upload(client, patient, key="shared-key").status_code == 202
    assert Scan.objects.count() == 2


def test_a_patients_scans_are_listed_with_their_results(api, patient, clinician_scan):
    body = api.get(reverse("api:patient_scans", args=[patient.pk])).json()
    assert [row["id"] for row in body["results"]] == [str(clinician_scan.pk)]


def test_a_non_multipart_upload_is_a_json_415(api, patient):
    response = api.post(reverse("api:patient_scans", args=[patient.pk]), {"image": "x"}, content_type="application/json")
    assert_json_error(response, 415, "unsupported_media_type")


def test_an_oversized_upload_is_a_json_413(api, patient, settings):
    settings.UPLOAD_MAX_REQUEST_BYTES = 1000
    response = upload(api, patient, data=png_bytes(size=256))
    assert_json_error(response, 413)
    assert Scan.objects.count() == 0


def test_other_sites_scans_are_404_to_read_list_and_upload(client, other_site_clinician, patient, clinician_scan):
    client.defaults.update(token_headers(other_site_clinician))
    assert_json_error(client.get(reverse("api:scan_detail", args=[clinician_scan.pk])), 404)
    assert_json_error(client.get(reverse("api:patient_scans", args=[patient.pk])), 404)
    assert_json_error(upload(client, patient, key="k"), 404)
    assert Scan.objects.count() == 1
