import pytest
from django.urls import reverse
from knox.models import AuthToken

from diagnosis.models import AuditEvent, Patient

pytestmark = pytest.mark.django_db


def test_clinician_registers_a_patient_at_their_own_site(clinician_client, clinician, site_a):
    response = clinician_client.post(
        reverse("diagnosis:patient_create"),
        {"medical_record_number": "  MRN-77 ", "family_name": "Nguyen", "given_name": "Linh", "date_of_birth": "1961-04-02", "sex": "F"},
    )
    patient = Patient.objects.get()
    assert response.status_code == 302 and response.url == reverse("diagnosis:patient_detail", args=[patient.pk])
    assert (patient.site, patient.medical_record_number, patient.created_by) == (site_a, "MRN-77", clinician)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_CREATED, patient=patient).exists()


def test_duplicate_medical_record_number_is_refused_clearly(clinician_client, patient):
    response = clinician_client.post(
        reverse("diagnosis:patient_create"), {"medical_record_number": "mrn-0001", "family_name": "X", "given_name": "Y", "sex": "U"}
    )
    assert response.status_code == 400
    assert b"already registered" in response.content
    assert Patient.objects.count() == 1


def test_missing_fields_are_reported(clinician_client):
    response = clinician_client.post(reverse("diagnosis:patient_create"), {"medical_record_number": "", "family_name": "", "given_name": "", "sex": "U"})
    assert response.status_code == 400
    assert response.content.count(b"This field is required.") == 3


@pytest.mark.parametrize("query, expected", [("okaf", True), ("ADA", True), ("MRN-0001", True), ("mrn-00", True), ("Smith", False)])
def test_search_by_name_or_mrn(clinician_client, patient, query, expected):
    response = clinician_client.get(reverse("diagnosis:patient_list"), {"q": query})
    assert (b"OKAFOR" in response.content) is expected


def test_patient_page_is_logged(clinician_client, clinician, patient):
    assert clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 200
    assert AuditEvent.objects.filter(actor=clinician, patient=patient, action=AuditEvent.Action.PATIENT_VIEWED).count() == 1


def api_post(client, user, data):
    _, token = AuthToken.objects.create(user)
    return client.post(reverse("api:patient_list"), data, HTTP_AUTHORIZATION=f"Token {token}", content_type="application/json")


def test_api_registers_a_patient(client, clinician, site_a):
    response = api_post(client, clinician, {"medical_record_number": "API-1", "family_name": "Costa", "given_name": "Rui", "sex": "M"})
    assert response.status_code == 201, response.content
    assert response.json()["site"] == "ste"
    assert Patient.objects.get(medical_record_number="API-1").site == site_a


def test_api_refuses_a_record_number_that_differs_only_in_case(client, clinician, patient):
    response = api_post(client, clinician, {"medical_record_number": "mrn-0001", "family_name": "Costa", "given_name": "Rui"})
    assert response.status_code == 400
    assert response.json() == {"code": "refused", "error": "A patient with medical record number mrn-0001 is already registered at St Elsewhere."}
    assert Patient.objects.count() == 1


def test_api_allows_the_same_record_number_at_another_site(client, other_site_clinician, patient, site_b):
    response = api_post(client, other_site_clinician, {"medical_record_number": "mrn-0001", "family_name": "Costa", "given_name": "Rui"})
    assert response.status_code == 201, response.content
    assert Patient.objects.get(site=site_b).medical_record_number == "mrn-0001"


def test_page_allows_the_same_record_number_at_another_site(client, other_site_clinician, patient, site_b):
    client.force_login(other_site_clinician)
    response = client.post(reverse("diagnosis:patient_create"), {"medical_record_number": "mrn-0001", "family_name": "X", "given_name": "Y", "sex": "U"})
    assert response.status_code == 302
    assert Patient.objects.get(site=site_b).medical_record_number == "mrn-0001"
