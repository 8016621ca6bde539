"""A DICOM's header identity is kept on the scan and shown on its card; a header naming someone
else is refused (page and API) unless the uploader confirms with a reason, which is recorded."""
import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.identity import display_filename
from diagnosis.models import AuditEvent, Patient, Scan
from tests.api import assert_json_error, token_headers
from tests.conftest import stored_files
from tests.images import png_bytes
from tests.ml.engine.dicom_files import dicom_file

pytestmark = pytest.mark.django_db

OKAFOR = {"PatientID": "mrn-0001", "PatientName": "OKAFOR^ADA", "PatientBirthDate": "19800214"}


@pytest.fixture
def patient(site_a, clinician):
    return Patient.objects.create(
        site=site_a, medical_record_number="MRN-0001", family_name="Okafor", given_name="Ada",
        date_of_birth=datetime.date(1980, 2, 14), created_by=clinician,
    )


def dicom(name="study.dcm", seed=0, **header):
    return SimpleUploadedFile(name, dicom_file(128, seed, **header), content_type="application/dicom")


def upload(client, patient, *files, **confirmation):
    return client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": list(files), **confirmation})


def patient_page(client, patient):
    return client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()


def test_the_header_identity_is_kept_and_each_card_tells_its_scan_apart(clinician_client, patient):
    studies = [
        ("C:\\Users\\ward3\\Desktop\\left.dcm", "20260102", "101500", "ACC-1", "PA"),
        ("../../etc/lateral.dcm", "20260103", "0930", "ACC-2", "LL"),
        ("portable.dcm", "20260104", "235959.123", "ACC-3", "AP"),
    ]
    files = [
        dicom(name, seed, **OKAFOR, StudyDate=date, StudyTime=time, AccessionNumber=accession, ViewPosition=view, PatientSex="F", BodyPartExamined="CHEST")
        for seed, (name, date, time, accession, view) in enumerate(studies)
    ]
    assert upload(clinician_client, patient, *files).status_code == 302
    scans = {scan.accession_number: scan for scan in Scan.objects.all()}
    left = scans["ACC-1"]
    assert (left.original_filename, left.study_date, left.study_time, left.view_position, left.modality, left.body_part) == (
        "left.dcm", datetime.date(2026, 1, 2), datetime.time(10, 15), "PA", "DX", "CHEST",
    )
    assert (left.header_patient_id, left.header_patient_name, left.header_birth_date, left.header_sex) == ("mrn-0001", "OKAFOR^ADA", datetime.date(1980, 2, 14), "F")
    assert (scans["ACC-2"].original_filename, scans["ACC-2"].study_time) == ("lateral.dcm", datetime.time(9, 30))
    assert scans["ACC-3"].study_time == datetime.time(23, 59, 59)
    assert not any(scan.identity_mismatch for scan in scans.values())

    page = patient_page(clinician_client, patient)
    for title in ("Study of 2 Jan 2026, 10:15 · PA · DX", "Study of 3 Jan 2026, 09:30 · LL · DX", "Study of 4 Jan 2026, 23:59 · AP · DX"):
        assert title in page
    for accession in ("Accession ACC-1", "Accession ACC-2", "Accession ACC-3"):
        assert page.count(accession) == 1
    assert "left.dcm" in page and "Users" not in page and "etc" not in page
    assert "Header: OKAFOR, ADA · ID mrn-0001 · born 14 Feb 1980 · sex F" in page
    assert "names someone else" not in page
    assert page.count("How to read these results") == 1


def test_a_png_has_its_name_but_no_header(clinician_client, patient):
    upload(clinician_client, patient, SimpleUploadedFile("bedside.png", png_bytes()))
    scan = Scan.objects.get()
    assert (scan.original_filename, scan.study_date, scan.header_patient_id, scan.modality) == ("bedside.png", None, "", "")
    page = patient_page(clinician_client, patient)
    assert "bedside.png" in page and "Header:" not in page


def test_the_displayed_name_has_no_directory_no_control_character_and_a_cap():
    assert display_filename("/var/tmp/a\x00b\x1b.dcm") == "ab.dcm"
    assert display_filename("..\\..\\x.png") == "x.png"
    assert len(display_filename("y" * 500 + ".dcm")) == 120
    assert display_filename(None) == ""


@pytest.mark.parametrize("header", [{"PatientID": "Anonymized", "PatientName": "Anonymized"}, {"PatientID": "", "PatientName": ""}, {"PatientID": None, "PatientName": None}])
def test_an_anonymised_header_is_accepted_and_shown_as_it_was(clinician_client, patient, header):
    assert upload(clinician_client, patient, dicom(**header)).status_code == 302
    page = patient_page(clinician_client, patient)
    assert ("Header: Anonymized · ID Anonymized" if header["PatientID"] else "Header: no patient identity") in page
    assert "names someone else" not in page


@pytest.mark.parametrize(
    "header, differs",
    [
        ({**OKAFOR, "PatientID": "Covid0000"}, "its patient ID is “Covid0000” but the record number is MRN-0001"),
        ({**OKAFOR, "PatientName": "SMITH^JOHN"}, "its patient name is “SMITH^JOHN” but the patient is OKAFOR, Ada"),
        ({**OKAFOR, "PatientName": "OKAFOR^BENEDICT"}, "its patient name is “OKAFOR^BENEDICT”"),
        ({**OKAFOR, "PatientBirthDate": "19910101"}, "its birth date is 1 Jan 1991 but the patient was born 14 Feb 1980"),
    ],
)
def test_a_header_naming_someone_else_is_refused_with_what_differs(clinician_client, patient, header, differs):
    files_before = stored_files()
    response = upload(clinician_client, patient, dicom(**header))
    assert response.status_code == 400
    page = response.content.decode()
    assert "The DICOM header names someone else" in page and differs in page
    assert 'name="confirm_identity_mismatch"' in page and 'name="identity_mismatch_reason"' in page
    assert Scan.objects.count() == 0 and stored_files() == files_before


@pytest.mark.parametrize("header", [{"PatientName": "Okafor^A"}, {"PatientName": "ADA OKAFOR"}, {"PatientID": "MRN-0001 "}, {"PatientBirthDate": "not a date"}])
def test_the_same_patient_written_differently_is_not_a_mismatch(clinician_client, patient, header):
    assert upload(clinician_client, patient, dicom(**{**OKAFOR, **header})).status_code == 302


def test_confirmation_without_a_reason_is_refused(clinician_client, patient):
    response = upload(clinician_client, patient, dicom(PatientID="Covid0000"), confirm_identity_mismatch="on", identity_mismatch_reason="  ")
    assert response.status_code == 400 and "Write the reason" in response.content.decode()
    assert Scan.objects.count() == 0


def test_a_confirmed_mismatch_is_filed_and_recorded_with_its_reason(clinician_client, patient):
    reason = "Emergency department used a temporary ID before registration."
    response = upload(clinician_client, patient, dicom(PatientID="Covid0000"), confirm_identity_mismatch="on", identity_mismatch_reason=reason)
    assert response.status_code == 302
    scan = Scan.objects.get()
    assert scan.identity_mismatch.startswith("The DICOM header names someone else: its patient ID is “Covid0000”")
    assert scan.identity_mismatch_reason == reason
    event = AuditEvent.objects.get(action=AuditEvent.Action.SCAN_UPLOADED, scan=scan)
    assert event.details == {
        "file_format": "dicom", "size_bytes": scan.size_bytes, "sha256": scan.sha256,
        "identity_mismatch": scan.identity_mismatch, "identity_mismatch_reason": reason,
    }
    page = patient_page(clinician_client, patient)
    assert "The header names someone else:" in page and reason in page


def test_one_mismatched_file_among_several_is_named_and_the_others_kept(clinician_client, patient):
    assert upload(clinician_client, patient, dicom("good.dcm", **OKAFOR), dicom("other.dcm", 1, PatientID="Covid0000")).status_code == 302
    assert "Not uploaded: File 2 (other.dcm): The DICOM header names someone else" in patient_page(clinician_client, patient)
    assert [scan.original_filename for scan in Scan.objects.all()] == ["good.dcm"]


def api_upload(client, patient, file, **fields):
    return client.post(reverse("api:patient_scans", args=[patient.pk]), {"image": file, **fields})


def test_the_api_refuses_a_mismatch_with_a_stable_code_and_accepts_a_confirmed_one(client, clinician, patient):
    client.defaults.update(token_headers(clinician))
    body = assert_json_error(api_upload(client, patient, dicom(PatientID="Covid0000")), 400, "identity_mismatch")
    assert "its patient ID is “Covid0000”" in body["error"] and Scan.objects.count() == 0
    assert_json_error(api_upload(client, patient, dicom(PatientID="Covid0000"), confirm_identity_mismatch="true"), 400, "identity_mismatch")

    response = api_upload(client, patient, dicom(PatientID="Covid0000", StudyDate="20260102", ViewPosition="AP"), confirm_identity_mismatch="true", identity_mismatch_reason="Temporary ED number.")
    assert response.status_code == 202
    body = response.json()
    assert body["identity_mismatch_reason"] == "Temporary ED number." and "Covid0000" in body["identity_mismatch"]
    assert body["original_filename"] == "study.dcm"
    assert body["dicom"] == {
        "study_date": "2026-01-02", "study_time": None, "accession_number": "", "study_instance_uid": "", "view_position": "AP", "modality": "DX", "body_part": "",
        "patient_id": "Covid0000", "patient_name": "", "patient_birth_date": None, "patient_sex": "",
    }
    assert AuditEvent.objects.get(action=AuditEvent.Action.SCAN_UPLOADED).details["identity_mismatch_reason"] == "Temporary ED number."


def test_the_schema_documents_the_identity_fields(client, clinician):
    client.force_login(clinician)
    schema = client.get(reverse("api:schema"), HTTP_ACCEPT="application/json").json()
    upload_fields = schema["components"]["schemas"]["ScanUpload"]["properties"]
    assert {"confirm_identity_mismatch", "identity_mismatch_reason"} <= set(upload_fields)
    scan_fields = schema["components"]["schemas"]["Scan"]["properties"]
    assert {"original_filename", "dicom", "identity_mismatch", "identity_mismatch_reason"} <= set(scan_fields)
    assert "identity_mismatch" in upload_fields["confirm_identity_mismatch"]["description"]
