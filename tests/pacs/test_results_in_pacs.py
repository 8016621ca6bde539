"""The whole way round, against a real Orthanc and a real Celery worker: Orthanc sends a chest film
to the portal's listener (its own store-to-modality call), the worker analyses it and sends the
result back, and the Secondary Capture and the SR are found in the film's study in Orthanc by
QIDO-RS and read back by WADO-RS. A real film from ../shared/data/dicom where it is present (its
patient identity replaced in memory by the test patient's), otherwise a film made here."""
import io
import json

import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from diagnosis.models import AuditEvent, Scan, Site
from pacs import routing
from pacs.models import ReceivedInstance, ResultSend
from tests.conftest import wait_for
from tests.pacs.conftest import ORTHANC_AET, free_port, needs_orthanc, radiograph, sr_reading

from ..diagnosis.test_real_dicom import DICOM_DIR, dicom_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, needs_orthanc]

SECONDARY_CAPTURE, COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.33"


def chest_film(patient):
    """A frontal chest film naming the patient: the first real one that routing reads, or one made here."""
    for path in dicom_files() if DICOM_DIR.is_dir() else []:
        try:
            film = pydicom.dcmread(path)
        except InvalidDicomError:  # one sample has no file meta at all; Orthanc takes files that have it
            continue
        if routing.skip_reason(film) is None and film.get("StudyInstanceUID"):
            film.PatientID, film.PatientName, film.PatientBirthDate = patient.medical_record_number, "OKAFOR^Ada", ""
            buffer = io.BytesIO()
            film.save_as(buffer, enforce_file_format=True)
            return buffer.getvalue()
    return radiograph(patient_id=patient.medical_record_number, name="OKAFOR^Ada")


@pytest.fixture
def results_node(orthanc_node):
    orthanc_node.receives_results = True
    orthanc_node.save()
    return orthanc_node


def sent_rows():
    return AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT).order_by("id")


def test_a_film_from_orthanc_comes_back_into_its_study_as_a_secondary_capture_and_an_sr(
        orthanc, results_node, patient, active_model_version, celery_worker_process, clinician_client):
    assert orthanc.send_to_portal(orthanc.upload(chest_film(patient)))[0] == 200
    film = ReceivedInstance.objects.get()
    send = wait_for(lambda: ResultSend.objects.filter(status=ResultSend.Status.SENT).first(), timeout=240, message="the results to be sent")
    prediction = send.prediction

    stored = orthanc.instances_of_study(film.study_instance_uid)
    assert stored[SECONDARY_CAPTURE] == [send.sc_instance_uid] and stored[COMPREHENSIVE_SR] == [send.sr_instance_uid]
    client = orthanc.dicomweb()
    reading = sr_reading(client.retrieve_instance(film.study_instance_uid, send.series_instance_uid, send.sr_instance_uid))
    assert reading["finding"][1] == ("Present" if prediction.is_positive else "Absent")
    assert reading["probability"] == round(prediction.positive_probability, 4) and reading["threshold"] == round(prediction.threshold, 4)
    assert reading["version"] == active_model_version.label and reading["references"] == {film.sop_instance_uid}
    assert "DEMO MODEL · not for clinical use" in reading["parameters"], "the test's tiny model is trained on synthetic images"
    capture = client.retrieve_instance(film.study_instance_uid, send.series_instance_uid, send.sc_instance_uid)
    assert capture.BurnedInAnnotation == "YES" and "Decision support, not a diagnosis" in capture.ImageComments
    assert capture.pixel_array.ndim == 3 and capture.PatientID == film.scan.patient.medical_record_number

    assert [(row.details["object"], row.details["ae_title"]) for row in sent_rows()] == [
        ("Structured Report", ORTHANC_AET), ("Secondary Capture", ORTHANC_AET)]
    page = clinician_client.get(f"/patients/{patient.pk}/").content.decode()
    assert f"Sent to PACS {ORTHANC_AET} at " in page and film.study_instance_uid in page


def test_results_wait_while_the_pacs_is_down_and_are_stored_once_when_it_is_back(
        orthanc, results_node, patient, active_model_version, celery_worker_process):
    results_node.port = free_port()  # nothing listens there: the PACS is down
    results_node.save()
    assert orthanc.send_to_portal(orthanc.upload(radiograph(patient_id=patient.medical_record_number, name="OKAFOR^Ada")))[0] == 200
    waiting = wait_for(lambda: ResultSend.objects.filter(tries__gte=1, status=ResultSend.Status.QUEUED).first(), timeout=240,
                       message="a send waiting for the PACS")
    assert waiting.status_sentence.startswith(f"Waiting to send to PACS {ORTHANC_AET}: The PACS {ORTHANC_AET} at 127.0.0.1:")
    assert "did not answer" in waiting.status_sentence and not sent_rows().exists()

    results_node.port = orthanc.dicom_port  # the PACS is back
    results_node.save()
    send = wait_for(lambda: ResultSend.objects.filter(status=ResultSend.Status.SENT).first(), timeout=120, message="the results to be sent")
    stored = orthanc.instances_of_study(ReceivedInstance.objects.get().study_instance_uid)
    assert stored[SECONDARY_CAPTURE] == [send.sc_instance_uid] and stored[COMPREHENSIVE_SR] == [send.sr_instance_uid]
    assert sent_rows().count() == 2 and ResultSend.objects.count() == 1


def test_several_results_queued_while_the_pacs_is_down_each_reach_it_once_when_it_is_back(
        orthanc, results_node, patient, active_model_version, celery_worker_process):
    results_node.port = free_port()  # nothing listens there: the PACS is down
    results_node.save()
    films = [orthanc.upload(radiograph(patient_id=patient.medical_record_number, name="OKAFOR^Ada", seed=seed)) for seed in (1, 2, 3)]
    assert orthanc.post("/modalities/portal/store", json.dumps({"Resources": films, "Synchronous": True}).encode())[0] == 200
    wait_for(lambda: ResultSend.objects.filter(tries__gte=1, status=ResultSend.Status.QUEUED).count() == 3, timeout=240,
             message="three sends waiting for the PACS")

    results_node.port = orthanc.dicom_port  # the PACS is back
    results_node.save()
    wait_for(lambda: ResultSend.objects.filter(status=ResultSend.Status.SENT).count() == 3, timeout=120, message="the three to be sent")
    for send in ResultSend.objects.select_related("prediction__scan"):
        stored = orthanc.instances_of_study(send.prediction.scan.study_instance_uid)
        assert stored[SECONDARY_CAPTURE] == [send.sc_instance_uid] and stored[COMPREHENSIVE_SR] == [send.sr_instance_uid]
    assert sent_rows().count() == 6, "each object sent once"


def test_a_silent_site_s_film_is_analysed_and_nothing_goes_back_to_the_pacs(
        orthanc, results_node, patient, site_a, active_model_version, celery_worker_process):
    Site.objects.filter(pk=site_a.pk).update(mode=Site.Mode.SILENT)
    assert orthanc.send_to_portal(orthanc.upload(radiograph(patient_id=patient.medical_record_number, name="OKAFOR^Ada")))[0] == 200
    film = ReceivedInstance.objects.get()
    wait_for(lambda: Scan.objects.filter(pk=film.scan_id, status=Scan.Status.DONE).exists(), timeout=240, message="the scan to be analysed")
    # A send would have been queued in the transaction that recorded the result: there is none.
    assert not ResultSend.objects.exists() and not sent_rows().exists()
    assert set(orthanc.instances_of_study(film.study_instance_uid)) == {"1.2.840.10008.5.1.4.1.1.1"}, "only the film itself"
