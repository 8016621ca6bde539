"""Films pushed from a real Orthanc to the portal's real DICOM listener, through Orthanc's own
store-to-modality call: routed, matched, stored once, refused with a DICOM status when bad."""
from datetime import date

import pytest

from diagnosis.models import AuditEvent, Patient, Scan
from pacs.models import ReceivedInstance
from tests.conftest import stored_files, wait_for
from tests.pacs.conftest import ORTHANC_AET, needs_orthanc, radiograph

pytestmark = [pytest.mark.django_db(transaction=True), needs_orthanc]


def received_rows():
    return AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_RECEIVED).order_by("id")


@pytest.mark.worker
def test_a_chest_film_from_the_pacs_is_analysed_for_its_patient_and_a_resend_makes_no_second_scan(
        orthanc, orthanc_node, patient, active_model_version, celery_worker_process):
    film = radiograph(patient_id=patient.medical_record_number.lower(), name="OKAFOR^ADA", AccessionNumber="ACC-17")
    instance = orthanc.upload(film)
    assert orthanc.send_to_portal(instance)[0] == 200

    scan = Scan.objects.get(patient=patient)  # committed before the listener said "stored"
    received = ReceivedInstance.objects.get()
    assert received.scan == scan and received.outcome == "analysed" and received.ae_title == ORTHANC_AET
    assert scan.study_instance_uid == received.study_instance_uid != "" and scan.accession_number == "ACC-17"
    scan = wait_for(lambda: Scan.objects.filter(pk=scan.pk, status=Scan.Status.DONE).first(), message="the scan to be analysed")
    assert scan.predictions.get().model_version == active_model_version

    assert orthanc.send_to_portal(instance)[0] == 200, "a resend is acknowledged"
    assert Scan.objects.count() == 1 and ReceivedInstance.objects.count() == 1
    assert [(row.details["outcome"], row.details["ae_title"], row.via) for row in received_rows()] == [
        ("analysed", ORTHANC_AET, "dicom"), ("duplicate", ORTHANC_AET, "dicom")]


@pytest.mark.parametrize(("header", "reason"), [
    ({"view": "LL"}, "A LL view, not a frontal (PA or AP) one"),
    ({"modality": "CT"}, "Not a radiograph (a CT scan)"),
    ({"body_part": "KNEE"}, "A radiograph of the knee, not of the chest."),
])
def test_what_is_not_a_frontal_chest_radiograph_is_acknowledged_and_skipped_with_its_reason(orthanc, orthanc_node, patient, header, reason):
    files_before = stored_files()
    assert orthanc.send_to_portal(orthanc.upload(radiograph(**header)))[0] == 200
    received = ReceivedInstance.objects.get()
    assert received.outcome == "skipped" and received.reason.startswith(reason)
    assert not Scan.objects.exists() and stored_files() == files_before
    assert received_rows().get().details["reason"] == received.reason


@pytest.mark.parametrize(("header", "reason"), [
    ({"patient_id": "MRN-9999"}, "No patient with record number MRN-9999"),
    ({"name": "SMITH^John"}, "The DICOM header names someone else"),
    ({"patient_id": ""}, "The header has no PatientID."),
])
def test_an_unknown_or_disagreeing_patient_is_held_as_unmatched_never_guessed(orthanc, orthanc_node, patient, header, reason):
    files_before = stored_files()
    assert orthanc.send_to_portal(orthanc.upload(radiograph(**header)))[0] == 200
    received = ReceivedInstance.objects.get()
    assert received.outcome == "unmatched" and received.reason.startswith(reason) and received.stored_name
    assert [path.name for path in set(stored_files()) - set(files_before)] == [received.stored_name.split("/")[-1]]
    assert not Scan.objects.exists() and Patient.objects.count() == 1


def test_a_birth_date_that_disagrees_with_the_record_is_held_as_unmatched(orthanc, orthanc_node, patient):
    patient.date_of_birth = date(1980, 1, 1)
    patient.save()
    assert orthanc.send_to_portal(orthanc.upload(radiograph(birth_date="19991231")))[0] == 200
    assert ReceivedInstance.objects.get().outcome == "unmatched" and not Scan.objects.exists()


def test_the_pacs_can_verify_the_connection_with_an_echo(orthanc, orthanc_node):
    status, answer = orthanc.post("/modalities/portal/echo", b"{}")
    assert status == 200, answer


def test_an_ae_title_that_is_not_a_node_is_refused_at_association(orthanc, patient):
    status, answer = orthanc.send_to_portal(orthanc.upload(radiograph()))
    assert status != 200, answer
    refused = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_REFUSED)
    assert refused.details == {"ae_title": ORTHANC_AET, "reason": "The AE title is not a registered DICOM node."}
    assert not ReceivedInstance.objects.exists() and not Scan.objects.exists()


def test_a_node_calling_from_another_host_is_refused(orthanc, orthanc_node, patient):
    orthanc_node.host = "192.0.2.10"  # TEST-NET-1: never this machine
    orthanc_node.save()
    assert orthanc.send_to_portal(orthanc.upload(radiograph()))[0] != 200
    assert "not from the node's host 192.0.2.10" in AuditEvent.objects.get(action=AuditEvent.Action.DICOM_REFUSED).details["reason"]


def test_a_film_whose_pixels_cannot_be_decoded_gets_a_failure_status_and_nothing_is_stored(orthanc, orthanc_node, patient):
    # The header promises 128 x 128 pixels; the data holds a few bytes. Orthanc keeps it (it does not decode pixels).
    files_before = stored_files()
    status, answer = orthanc.send_to_portal(orthanc.upload(radiograph(PixelData=b"\0" * 64)))
    assert status != 200, answer
    assert not Scan.objects.exists() and not ReceivedInstance.objects.exists() and stored_files() == files_before
    assert received_rows().get().details["outcome"] == "refused"
