"""Patients through /api/v1/: search, pages, registration, correction; other sites stay invisible."""
import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from diagnosis.models import AuditEvent, Patient
from tests.api import assert_json_error, token_headers
from tests.conftest import make_user


@pytest.fixture
def api(client, clinician):
    client.defaults.update(token_headers(clinician))
    return client


def test_search_finds_by_name_and_pages(api, site_a, clinician):
    for number in range(3):
        Patient.objects.create(site=site_a, medical_record_number=f"MRN-{number}", family_name=f"Smith{number}", given_name="Jo")
    Patient.objects.create(site=site_a, medical_record_number="MRN-X", family_name="Other", given_name="Al")
    body = api.get(reverse("api:patient_list"), {"q": "smith", "page": 1}).json()
    assert body["count"] == 3
    assert {row["family_name"] for row in body["results"]} == {"Smith0", "Smith1", "Smith2"}


def test_a_page_past_the_end_is_a_json_404(api, patient):
    assert_json_error(api.get(reverse("api:patient_list"), {"page": 9}), 404)


def test_register_a_patient(api, site_a):
    response = api.post(reverse("api:patient_list"), {"medical_record_number": "MRN-9", "family_name": "New", "given_name": "Pat"}, content_type="application/json")
    assert response.status_code == 201
    assert Patient.objects.get(pk=response.json()["id"]).site == site_a


def test_correct_a_patient_records_an_audit_row(api, patient, clinician):
    response = api.patch(reverse("api:patient_detail", args=[patient.pk]), {"family_name": "Okafor-Bello", "sex": "F"}, content_type="application/json")
    assert response.status_code == 200
    patient.refresh_from_db()
    assert (patient.family_name, patient.sex) == ("Okafor-Bello", "F")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_UPDATED, patient=patient, actor=clinician, via="api").count() == 1


def test_correction_keeps_the_record_number_unique_ignoring_case(api, patient, site_a):
    other = Patient.objects.create(site=site_a, medical_record_number="MRN-0002", family_name="B", given_name="C")
    response = api.patch(reverse("api:patient_detail", args=[other.pk]), {"medical_record_number": "mrn-0001"}, content_type="application/json")
    assert "already registered" in assert_json_error(response, 400)["error"]
    other.refresh_from_db()
    assert other.medical_record_number == "MRN-0002"


def test_put_is_not_offered(api, patient):
    assert_json_error(api.put(reverse("api:patient_detail", args=[patient.pk]), {}, content_type="application/json"), 405, "method_not_allowed")


def test_other_sites_patients_are_404_to_read_and_to_correct(client, other_site_clinician, patient):
    client.defaults.update(token_headers(other_site_clinician))
    url = reverse("api:patient_detail", args=[patient.pk])
    assert_json_error(client.get(url), 404, "not_found")
    assert_json_error(client.patch(url, {"family_name": "X"}, content_type="application/json"), 404)
    assert client.get(reverse("api:patient_list"), {"q": "Okafor"}).json()["count"] == 0
    patient.refresh_from_db()
    assert patient.family_name == "Okafor"


def test_an_accept_header_the_api_cannot_serve_is_a_json_406(api, patient):
    assert_json_error(api.get(reverse("api:patient_list"), HTTP_ACCEPT="application/xml"), 406, "not_acceptable")


def test_a_role_that_may_register_but_not_correct_patients_gets_403_on_patch(client, site_a, patient):
    registrars = Group.objects.create(name="Registrars")
    registrars.permissions.set(Permission.objects.filter(content_type__app_label="diagnosis", codename__in=["view_patient", "add_patient"]))
    registrar = make_user("registrar", "Registrars", site_a)
    response = client.patch(reverse("api:patient_detail", args=[patient.pk]), {"family_name": "X"}, content_type="application/json", **token_headers(registrar))
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    patient.refresh_from_db()
    assert patient.family_name == "Okafor"
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_UPDATED).exists()


@pytest.mark.parametrize("body", [{}, {"family_name": "Okafor"}, {"family_name": " Okafor ", "given_name": "Ada"}], ids=["empty", "same", "same once trimmed"])
def test_a_patch_that_changes_nothing_writes_no_row(api, patient, body):
    response = api.patch(reverse("api:patient_detail", args=[patient.pk]), body, content_type="application/json")
    assert response.status_code == 200 and response.json()["family_name"] == "Okafor"
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_UPDATED).exists()
