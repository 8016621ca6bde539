"""`/api/v1/unmatched-instances/`: the page's rules over the API (pacs.selectors, pacs.filing), with
an instance held by the listener's own intake (pacs.receiving.receive)."""
from diagnosis.models import AuditEvent, Patient, Scan
from pacs.models import ReceivedInstance
from tests.api import assert_json_error, token_client

URL = "/api/v1/unmatched-instances/"


def test_the_list_is_the_site_s_and_audited(held, clinician, administrator, other_site_clinician):
    instance = held()
    for user in (clinician, administrator):
        listed = token_client(user).get(URL).json()
        rows = listed.get("results", listed)
        assert [(row["id"], row["ae_title"], row["site"], row["header_patient_id"], row["header_birth_date"], row["study_date"]) for row in rows] == [
            (instance.pk, "ORTHANC", "ste", "MRN-4040", "1970-03-12", "2026-12-01")]
        assert rows[0]["held_because"] == "No patient with record number MRN-4040 at St Elsewhere."
    other = token_client(other_site_clinician).get(URL).json()
    assert other.get("results", other) == []
    assert_json_error(token_client(other_site_clinician).post(f"{URL}{instance.pk}/dismiss/", {"reason": "not ours"}, format="json"), 404, "not_found")
    rows = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_UNMATCHED_VIEWED).order_by("id")
    assert [(row.actor, row.via, row.details["instances"]) for row in rows] == [
        (clinician, "api", [str(instance.pk)]), (administrator, "api", [str(instance.pk)]), (other_site_clinician, "api", [])]


def test_filing_over_the_api_needs_the_confirmation_and_happens_once(held, clinician, administrator, patient):
    instance = held()
    api = token_client(clinician)
    refused = assert_json_error(api.post(f"{URL}{instance.pk}/file/", {"patient": str(patient.pk)}, format="json"), 400, "refused")
    assert refused["error"].startswith("The DICOM header names someone else: its patient ID is “MRN-4040”")
    assert_json_error(api.post(f"{URL}{instance.pk}/file/", {"patient": "nope"}, format="json"), 400, "invalid")
    filed = api.post(f"{URL}{instance.pk}/file/", {"patient": str(patient.pk), "confirm_identity_mismatch": True,
                                                   "identity_mismatch_reason": "Old clinic number"}, format="json")
    assert filed.status_code == 201, filed.content
    assert filed.json()["patient"] == str(patient.pk) and filed.json()["status"] == "queued"
    again = assert_json_error(token_client(administrator).post(f"{URL}{instance.pk}/dismiss/", {"reason": "x"}, format="json"), 409, "already_settled")
    assert again["error"].startswith(f"This image was already filed under {patient} by dr_a at")
    assert Scan.objects.count() == 1 and ReceivedInstance.objects.get().outcome == "filed"
    assert AuditEvent.objects.get(action=AuditEvent.Action.DICOM_FILED).via == "api"


def test_registering_and_dismissing_over_the_api(held, clinician):
    first, second = held(), held(patient_id="MRN-5050", name="DOE^Jane")
    api = token_client(clinician)
    assert_json_error(api.post(f"{URL}{first.pk}/register/", {"family_name": "Mbeki"}, format="json"), 400, "invalid")
    registered = api.post(f"{URL}{first.pk}/register/", {"medical_record_number": "MRN-4040", "family_name": "Mbeki", "given_name": "Thabo",
                                                         "date_of_birth": "1970-03-12"}, format="json")
    assert registered.status_code == 201, registered.content
    assert Patient.objects.get(pk=registered.json()["patient"]).medical_record_number == "MRN-4040"
    assert_json_error(api.post(f"{URL}{second.pk}/dismiss/", {"reason": "  "}, format="json"), 400)
    dismissed = api.post(f"{URL}{second.pk}/dismiss/", {"reason": "QA phantom"}, format="json")
    assert dismissed.status_code == 200 and dismissed.json()["outcome"] == "dismissed" and dismissed.json()["resolution_reason"] == "QA phantom"
    listed = api.get(URL).json()
    assert listed.get("results", listed) == []
