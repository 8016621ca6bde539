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


def card_ids(response):
    import re

    return re.findall(r'<article class="scan[^"]*" id="scan-([0-9a-f-]+)"', response.content.decode())


def test_the_patient_list_is_paged_and_says_how_many(clinician_client, patient, site_a):
    Patient.objects.bulk_create(
        [Patient(site=site_a, medical_record_number=f"P-{n:03d}", family_name=f"Adeyemi{n:03d}", given_name="Tolu") for n in range(60)]
    )
    first = clinician_client.get(reverse("diagnosis:patient_list")).content.decode()
    assert "61 patients." in first and first.count("/patients/") - first.count("/patients/new/") >= 50 and "Page 1 of 2" in first
    second = clinician_client.get(reverse("diagnosis:patient_list"), {"page": 2, "q": "adeyemi"}).content.decode()
    assert "60 patients match" in second and "ADEYEMI0" in second and 'rel="prev"' in second and "q=adeyemi" in second


def test_a_long_history_is_paged_and_a_worklist_link_opens_the_page_of_its_scan(clinician_client, patient, add_scan):
    scans = [add_scan(patient, minutes_ago=minutes) for minutes in range(25)]  # newest first
    url = reverse("diagnosis:patient_detail", args=[patient.pk])
    assert card_ids(clinician_client.get(url)) == [str(scan.pk) for scan in scans[:20]]
    assert card_ids(clinician_client.get(url, {"page": 2})) == [str(scan.pk) for scan in scans[20:]]
    assert str(scans[22].pk) in card_ids(clinician_client.get(url, {"scan": scans[22].pk}))
    assert str(scans[3].pk) in card_ids(clinician_client.get(url, {"scan": scans[3].pk}))
    assert clinician_client.get(url, {"scan": "not-a-scan"}).status_code == 200
    worklist = clinician_client.get(reverse("diagnosis:home")).content.decode()
    assert f"{url}?scan={scans[0].pk}#scan-{scans[0].pk}" in worklist
