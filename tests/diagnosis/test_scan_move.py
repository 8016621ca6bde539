"""A wrongly filed scan is moved to the right patient, and a patient's details corrected, in the
pages and the API; both audited, both scoped to the patients the user may see."""
import pytest
from django.urls import reverse

from diagnosis.models import AuditEvent, Patient, Scan
from tests.api import assert_json_error, token_headers

pytestmark = pytest.mark.django_db


@pytest.fixture
def right_patient(site_a, clinician):
    return Patient.objects.create(site=site_a, medical_record_number="MRN-0002", family_name="Smith", given_name="John", created_by=clinician)


@pytest.fixture
def other_site_patient(site_b):
    return Patient.objects.create(site=site_b, medical_record_number="MRN-0002", family_name="Jones", given_name="Ann")


@pytest.fixture
def misfiled(add_scan, patient, clinician):
    return add_scan(patient, Scan.Status.DONE, uploaded_by=clinician)


def patient_page(client, patient):
    return client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()


def move_on_page(client, scan, number, reason="Header says SMITH^JOHN; filed under the wrong patient."):
    return client.post(reverse("diagnosis:scan_move", args=[scan.pk]), {"medical_record_number": number, "reason": reason}, follow=True)


def test_a_scan_moved_on_the_page_shows_on_the_new_patient_only_and_is_audited(clinician_client, clinician, patient, right_patient, misfiled):
    assert f'id="scan-{misfiled.pk}"' in patient_page(clinician_client, patient)
    response = move_on_page(clinician_client, misfiled, "mrn-0002")
    assert response.redirect_chain[-1][0] == reverse("diagnosis:patient_detail", args=[right_patient.pk])
    assert "The scan was moved from OKAFOR, Ada (MRN-0001) to SMITH, John (MRN-0002)." in response.content.decode()
    assert f'id="scan-{misfiled.pk}"' in patient_page(clinician_client, right_patient)
    assert f'id="scan-{misfiled.pk}"' not in patient_page(clinician_client, patient)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SCAN_MOVED)
    assert (event.actor, event.patient, event.scan, event.via) == (clinician, right_patient, misfiled, "web")
    assert event.details["from_patient"] == str(patient.pk) and event.details["to_patient"] == str(right_patient.pk)
    assert event.details["reason"] == "Header says SMITH^JOHN; filed under the wrong patient."


@pytest.mark.parametrize(
    "number, reason, message",
    [
        ("MRN-9999", "wrong patient", "No patient you can see has the medical record number MRN-9999"),
        ("MRN-0001", "wrong patient", "already filed under OKAFOR, Ada"),
        ("MRN-0002", "", "Give the right patient"),
    ],
)
def test_a_move_that_cannot_be_made_says_why_and_changes_nothing(clinician_client, patient, right_patient, misfiled, number, reason, message):
    response = move_on_page(clinician_client, misfiled, number, reason)
    assert response.status_code == 200 and message in response.content.decode()
    assert Scan.objects.get(pk=misfiled.pk).patient == patient
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SCAN_MOVED).exists()


def test_another_sites_patient_cannot_be_the_target_on_the_page(clinician_client, patient, other_site_patient, misfiled):
    response = move_on_page(clinician_client, misfiled, other_site_patient.medical_record_number)
    assert "No patient you can see" in response.content.decode()
    assert Scan.objects.get(pk=misfiled.pk).patient == patient


def test_another_sites_scan_is_404_on_the_page(client, other_site_clinician, misfiled):
    client.force_login(other_site_clinician)
    response = client.post(reverse("diagnosis:scan_move", args=[misfiled.pk]), {"medical_record_number": "MRN-0002", "reason": "x"})
    assert response.status_code == 404


def api_move(client, scan, patient_id, reason="Wrong patient."):
    return client.post(reverse("api:scan_move", args=[scan.pk]), {"patient": str(patient_id), "reason": reason}, content_type="application/json")


def test_the_api_moves_a_scan_and_audits_it(client, clinician, patient, right_patient, misfiled):
    client.defaults.update(token_headers(clinician))
    response = api_move(client, misfiled, right_patient.pk)
    assert response.status_code == 200 and response.json()["patient"] == str(right_patient.pk)
    listed = client.get(reverse("api:patient_scans", args=[right_patient.pk])).json()["results"]
    assert [row["id"] for row in listed] == [str(misfiled.pk)]
    assert client.get(reverse("api:patient_scans", args=[patient.pk])).json()["results"] == []
    event = AuditEvent.objects.get(action=AuditEvent.Action.SCAN_MOVED)
    assert (event.via, event.details["from_patient"], event.details["to_patient"]) == ("api", str(patient.pk), str(right_patient.pk))


def test_the_api_gives_404_for_other_sites_ids_and_moves_nothing(client, clinician, other_site_clinician, patient, right_patient, other_site_patient, misfiled, add_scan):
    client.defaults.update(token_headers(clinician))
    assert_json_error(api_move(client, misfiled, other_site_patient.pk), 404, "not_found")
    foreign_scan = add_scan(other_site_patient, Scan.Status.DONE)
    assert_json_error(api_move(client, foreign_scan, right_patient.pk), 404, "not_found")
    assert_json_error(api_move(client, misfiled, right_patient.pk, reason=""), 400, "invalid")
    client.defaults.update(token_headers(other_site_clinician))
    assert_json_error(api_move(client, misfiled, other_site_patient.pk), 404, "not_found")
    assert Scan.objects.get(pk=misfiled.pk).patient == patient and Scan.objects.get(pk=foreign_scan.pk).patient == other_site_patient
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SCAN_MOVED).exists()


def test_an_administrator_moves_between_sites(client, administrator, other_site_patient, misfiled):
    client.defaults.update(token_headers(administrator))
    assert api_move(client, misfiled, other_site_patient.pk).status_code == 200
    assert Scan.objects.get(pk=misfiled.pk).patient == other_site_patient


def test_a_patient_is_corrected_on_the_page_with_old_and_new_values_audited(clinician_client, clinician, patient):
    edit = reverse("diagnosis:patient_edit", args=[patient.pk])
    assert 'value="Okafor"' in clinician_client.get(edit).content.decode()
    response = clinician_client.post(edit, {"medical_record_number": "MRN-0001", "family_name": "Okafor-Bello", "given_name": "Ada", "date_of_birth": "1980-02-14", "sex": "F"}, follow=True)
    assert "Corrected the details of OKAFOR-BELLO, Ada (MRN-0001)." in response.content.decode()
    patient.refresh_from_db()
    assert (patient.family_name, str(patient.date_of_birth), patient.sex) == ("Okafor-Bello", "1980-02-14", "F")
    event = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_UPDATED)
    assert event.actor == clinician and event.details["changes"] == {
        "family_name": ["Okafor", "Okafor-Bello"], "date_of_birth": [None, "1980-02-14"], "sex": ["U", "F"],
    }


def test_a_correction_to_a_record_number_in_use_is_refused_on_the_page(clinician_client, patient, right_patient):
    edit = reverse("diagnosis:patient_edit", args=[patient.pk])
    response = clinician_client.post(edit, {"medical_record_number": "mrn-0002", "family_name": "Okafor", "given_name": "Ada", "sex": "U"})
    assert response.status_code == 400 and "already registered" in response.content.decode()
    patient.refresh_from_db()
    assert patient.medical_record_number == "MRN-0001"
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_UPDATED).exists()


def test_another_sites_patient_cannot_be_corrected(client, other_site_clinician, patient):
    client.force_login(other_site_clinician)
    edit = reverse("diagnosis:patient_edit", args=[patient.pk])
    assert client.get(edit).status_code == 404
    assert client.post(edit, {"medical_record_number": "X", "family_name": "X", "given_name": "X", "sex": "U"}).status_code == 404
    patient.refresh_from_db()
    assert patient.family_name == "Okafor"
