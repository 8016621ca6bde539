"""Sending a result back to the node its film came from (pacs.sends, pacs.sending): queued with
the result, never for a silent site, retried with back-off while the node is down, stored in a
real Orthanc by C-STORE or STOW-RS, each object once. The send runs in the test process here
(the test's transaction is never committed, so no worker sees these rows); the whole path through
a real worker is test_results_in_pacs.py."""
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from diagnosis import storage
from diagnosis.inference import grey_png, record_prediction
from diagnosis.models import AuditEvent, Scan, Site
from jobs import lifecycle
from pacs import receiving, sending
from pacs.models import DicomNode, ReceivedInstance, ResultSend
from portal import metrics
from tests.ml.conftest import make_version  # noqa: F401  (a fixture: registers a stand-in model version)
from tests.pacs.conftest import ORTHANC_AET, free_port, needs_orthanc, radiograph, sr_reading


@pytest.fixture
def node(site_a):
    """A node of site A that takes results; its DICOM port is closed until a test points it at Orthanc."""
    return DicomNode.objects.create(ae_title=ORTHANC_AET, host="127.0.0.1", port=free_port(), site=site_a, receives_results=True)


@pytest.fixture
def analysed(node, patient, make_version):
    """analysed(probability): a film received from the node, analysed by a stand-in version with a
    heatmap, its answer recorded as the worker records it; returns the prediction."""
    version = make_version()

    def analyse(probability=0.91, **header):
        assert receiving.receive(node, radiograph(patient_id=patient.medical_record_number, name="OKAFOR^Ada", **header)) == receiving.SUCCESS
        scan = lifecycle.claim(Scan, ReceivedInstance.objects.latest("received_at").scan_id)
        y, x = np.mgrid[0:64, 0:64]
        heatmap_name = storage.write(grey_png((255 * np.exp(-((x - 20) ** 2 + (y - 30) ** 2) / 200)).astype(np.uint8)), "png")
        label = "covid" if probability >= 0.5 else "normal"
        result = {"label": label, "probabilities": {"covid": probability, "normal": 1 - probability},
                  "positive_probability": probability, "threshold": 0.5}
        return record_prediction(scan=scan, model_version=version, result=result, heatmap_name=heatmap_name, inference_ms=5)

    return analyse


def test_a_result_of_a_film_from_a_node_that_takes_results_is_queued_with_it(analysed, node):
    prediction = analysed()
    send = ResultSend.objects.get()
    assert (send.prediction, send.node, send.ae_title, send.status) == (prediction, node, ORTHANC_AET, ResultSend.Status.QUEUED)
    assert len({send.series_instance_uid, send.sc_instance_uid, send.sr_instance_uid}) == 3
    assert send.status_sentence == f"Sending to PACS {ORTHANC_AET}…"


def test_no_send_for_a_node_that_does_not_take_results(analysed, node):
    node.receives_results = False
    node.save()
    analysed()
    assert not ResultSend.objects.exists()


def test_a_silent_site_s_results_are_never_sent(analysed, site_a):
    site_a.mode = Site.Mode.SILENT
    site_a.save()
    analysed()
    assert not ResultSend.objects.exists()


def test_a_send_queued_before_its_site_went_silent_is_not_sent(analysed, site_a):
    analysed()
    site_a.mode = Site.Mode.SILENT
    site_a.save()
    send = sending.execute_send(ResultSend.objects.get().pk)
    assert send.status == ResultSend.Status.CANCELLED and "silent period" in send.status_sentence
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT).exists()


def test_a_node_that_is_down_gets_a_sentence_and_a_later_try_and_the_sweep_waits_for_it(analysed, settings):
    settings.PORTAL_PACS_RETRY_FIRST_SECONDS = 30
    analysed()
    before = timezone.now()
    send = sending.execute_send(ResultSend.objects.get().pk)
    assert send.status == ResultSend.Status.QUEUED and send.tries == 1 and send.attempts == 0
    assert before + timedelta(seconds=29) < send.next_try_at < timezone.now() + timedelta(seconds=31)
    assert "did not answer" in send.last_error and send.status_sentence.startswith(f"Waiting to send to PACS {ORTHANC_AET}: The PACS")
    assert "Next try at" in send.status_sentence
    assert send not in ResultSend.objects.filter(ResultSend.due()), "the sweep does not send it before its time"
    ResultSend.objects.filter(pk=send.pk).update(next_try_at=timezone.now() - timedelta(seconds=1), enqueued_at=None)
    assert send in ResultSend.objects.filter(ResultSend.due())
    assert sending.retry_delay(0) == 30 and sending.retry_delay(1) == 60 and sending.retry_delay(30) == settings.PORTAL_PACS_RETRY_MAX_SECONDS


def test_a_node_down_past_the_give_up_time_fails_the_send_with_its_reason(analysed, settings):
    settings.PORTAL_PACS_GIVE_UP_HOURS = 1
    analysed()
    ResultSend.objects.update(created_at=timezone.now() - timedelta(hours=2))
    send = sending.execute_send(ResultSend.objects.get().pk)
    assert send.status == ResultSend.Status.FAILED and send.status_sentence.startswith(f"Failed to send to PACS {ORTHANC_AET}: The PACS")
    assert send.failure_reason.endswith("Gave up after 1 hours of tries.")


def test_a_send_that_ended_is_never_sent_again(analysed):
    analysed()
    send = ResultSend.objects.get()
    ResultSend.objects.filter(pk=send.pk).update(status=ResultSend.Status.SENT, finished_at=timezone.now())
    assert sending.execute_send(send.pk) is None, "a second message for a sent result claims nothing"


@needs_orthanc
def test_the_results_are_stored_in_orthanc_by_c_store_once_in_the_film_s_study(orthanc, analysed, node, django_capture_on_commit_callbacks):
    prediction = analysed(probability=0.8321, AccessionNumber="ACC-5")
    node.port = orthanc.dicom_port
    node.save()
    counted_before = {name: metrics.DICOM_SENT.labels(name)._value.get() for name in (sending.SECONDARY_CAPTURE, sending.STRUCTURED_REPORT)}
    with django_capture_on_commit_callbacks(execute=True):
        send = sending.execute_send(ResultSend.objects.get().pk)
    for name, before in counted_before.items():
        assert metrics.DICOM_SENT.labels(name)._value.get() == before + 1, f"the {name} sent is counted once in the metrics"
    assert send.status == ResultSend.Status.SENT and send.sc_sent_at and send.sr_sent_at
    assert send.status_sentence.startswith(f"Sent to PACS {ORTHANC_AET} at ")
    study = prediction.scan.study_instance_uid
    stored = orthanc.instances_of_study(study)
    assert stored == {"1.2.840.10008.5.1.4.1.1.7": [send.sc_instance_uid], "1.2.840.10008.5.1.4.1.1.88.33": [send.sr_instance_uid]}
    report = orthanc.dicomweb().retrieve_instance(study, send.series_instance_uid, send.sr_instance_uid)
    reading = sr_reading(report)
    film_uid = ReceivedInstance.objects.get().sop_instance_uid
    assert reading["finding"] == ("52101004", "Present") and reading["probability"] == 0.8321 and reading["threshold"] == 0.5
    assert reading["version"] == prediction.model_version.label and reading["references"] == {film_uid}
    assert (report.PatientID, report.AccessionNumber) == (prediction.scan.patient.medical_record_number, "ACC-5")
    sent_rows = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT).order_by("id")
    assert [(row.details["object"], row.details["ae_title"], row.details["over"], row.scan_id) for row in sent_rows] == [
        ("Structured Report", ORTHANC_AET, "C-STORE", prediction.scan_id), ("Secondary Capture", ORTHANC_AET, "C-STORE", prediction.scan_id)]


@needs_orthanc
def test_the_results_go_by_stow_rs_to_a_node_with_a_dicomweb_url(orthanc, analysed, node):
    client = orthanc.dicomweb()  # skips where the plugin is absent
    prediction = analysed(probability=0.2)
    node.dicomweb_url = f"{orthanc.url}/dicom-web/"
    node.save()
    send = sending.execute_send(ResultSend.objects.get().pk)
    assert send.status == ResultSend.Status.SENT
    report = client.retrieve_instance(prediction.scan.study_instance_uid, send.series_instance_uid, send.sr_instance_uid)
    assert sr_reading(report)["finding"] == ("2667000", "Absent")
    assert set(AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT).values_list("details__over", flat=True)) == {"STOW-RS"}


@needs_orthanc
def test_sends_due_to_the_same_node_go_together_and_each_is_stored_once(orthanc, analysed, node):
    predictions = [analysed(probability=p) for p in (0.9, 0.2, 0.7)]
    node.port = orthanc.dicom_port
    node.save()
    first, *others = ResultSend.objects.order_by("created_at")
    assert sending.execute_send(first.pk).status == ResultSend.Status.SENT
    sends = {send.prediction_id: send for send in ResultSend.objects.all()}
    assert {send.status for send in sends.values()} == {ResultSend.Status.SENT}, "the one message sent all three"
    assert len({(send.worker, send.started_at) for send in sends.values() if send.pk != first.pk}) == 1, "claimed together"
    assert all(send.attempts == 1 and send.sc_sent_at and send.sr_sent_at for send in sends.values())
    assert [sending.execute_send(send.pk) for send in others] == [None, None], "their own messages claim nothing"
    for prediction in predictions:
        send = sends[prediction.pk]
        assert orthanc.instances_of_study(prediction.scan.study_instance_uid) == {
            "1.2.840.10008.5.1.4.1.1.7": [send.sc_instance_uid], "1.2.840.10008.5.1.4.1.1.88.33": [send.sr_instance_uid]}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT).count() == 6


@needs_orthanc
def test_a_node_that_refuses_fails_each_send_taken_with_it_with_its_answer(orthanc, analysed, node):
    analysed()
    analysed()
    node.dicomweb_url = f"{orthanc.url}/no-such-service/"
    node.save()
    sending.execute_send(ResultSend.objects.order_by("created_at").first().pk)
    assert [(send.status, send.tries) for send in ResultSend.objects.all()] == [(ResultSend.Status.FAILED, 0)] * 2
    assert {send.failure_reason for send in ResultSend.objects.all()} == {
        f"The DICOMweb service of {ORTHANC_AET} refused the Structured Report (HTTP 404)."}
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT).exists()


def test_sends_to_a_node_that_is_down_wait_together_for_the_same_next_try(analysed, settings):
    settings.PORTAL_PACS_RETRY_FIRST_SECONDS = 30
    analysed()
    analysed()
    sending.execute_send(ResultSend.objects.order_by("created_at").first().pk)
    waiting = list(ResultSend.objects.all())
    assert [(send.status, send.tries) for send in waiting] == [(ResultSend.Status.QUEUED, 1)] * 2
    assert waiting[0].next_try_at == waiting[1].next_try_at, "the first of them due takes the other along"


@needs_orthanc
def test_a_retry_after_the_first_object_was_stored_sends_only_the_other(orthanc, analysed, node):
    prediction = analysed()
    node.port = orthanc.dicom_port
    node.save()
    ResultSend.objects.update(sr_sent_at=timezone.now())  # as if the worker died after the PACS confirmed the SR, sent first
    send = sending.execute_send(ResultSend.objects.get().pk)
    assert send.status == ResultSend.Status.SENT
    assert orthanc.instances_of_study(prediction.scan.study_instance_uid) == {"1.2.840.10008.5.1.4.1.1.7": [send.sc_instance_uid]}


@needs_orthanc
def test_a_node_that_refuses_the_objects_fails_the_send_at_once_with_its_answer(orthanc, analysed, node):
    analysed()
    node.dicomweb_url = f"{orthanc.url}/no-such-service/"  # Orthanc answers 404 there: asking again would not change it
    node.save()
    send = sending.execute_send(ResultSend.objects.get().pk)
    assert send.status == ResultSend.Status.FAILED and send.tries == 0
    assert send.status_sentence == f"Failed to send to PACS {ORTHANC_AET}: The DICOMweb service of {ORTHANC_AET} refused the Structured Report (HTTP 404)."
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT).exists()


@needs_orthanc
def test_a_capture_that_cannot_be_made_after_the_sr_is_stored_fails_its_send_only_with_the_sr_recorded(
        orthanc, analysed, node):
    broken, whole = analysed(probability=0.9), analysed(probability=0.2)
    node.port = orthanc.dicom_port
    node.save()
    storage.delete(broken.heatmap_name)  # the capture is made after the SR is stored: its map is gone from the store by then
    first = ResultSend.objects.get(prediction=broken)
    sending.execute_send(first.pk)
    first.refresh_from_db()
    assert first.status == ResultSend.Status.FAILED and first.sr_sent_at and not first.sc_sent_at
    assert first.failure_reason == ("The Structured Report is in the PACS, but making the Secondary Capture failed because of an internal "
                                    "error; IT has the details in the worker log.")
    assert orthanc.instances_of_study(broken.scan.study_instance_uid) == {"1.2.840.10008.5.1.4.1.1.88.33": [first.sr_instance_uid]}
    other = ResultSend.objects.get(prediction=whole)
    assert other.status == ResultSend.Status.SENT, "the send taken along over the same association goes on"
    assert orthanc.instances_of_study(whole.scan.study_instance_uid) == {
        "1.2.840.10008.5.1.4.1.1.7": [other.sc_instance_uid], "1.2.840.10008.5.1.4.1.1.88.33": [other.sr_instance_uid]}
    sent = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SENT, scan=broken.scan).values_list("details__object", flat=True)
    assert list(sent) == ["Structured Report"]
