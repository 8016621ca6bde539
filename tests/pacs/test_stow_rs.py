"""STOW-RS (`POST /dicomweb/studies`): a node's account pushes DICOM files over HTTP with its API
token; each part goes through the intake the listener uses, and the answer is PS3.18's response."""
import io
import uuid

import pydicom
import pytest

from diagnosis.models import AuditEvent, Scan
from pacs.models import DicomNode, ReceivedInstance
from tests.api import assert_json_error, token_client
from tests.conftest import make_user, stored_files
from tests.pacs.conftest import radiograph

URL = "/dicomweb/studies"
DICOM_TYPE = 'multipart/related; type="application/dicom"; boundary={}'
REFERENCED, FAILED, FAILURE_REASON, SOP_INSTANCE = "00081199", "00081198", "00081197", "00081155"


def multipart(*parts):
    """(Content-Type, body) of multipart/related with parts [(content type, bytes)]."""
    boundary = uuid.uuid4().hex
    body = b"".join(b"--%s\r\nContent-Type: %s\r\n\r\n%s\r\n" % (boundary.encode(), kind.encode(), data) for kind, data in parts)
    return DICOM_TYPE.format(boundary), body + b"--%s--\r\n" % boundary.encode()


def sop_uid(data):
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID


@pytest.fixture
def pacs_account(site_a):
    """The account a PACS uses for STOW-RS: no role, only the link from its node."""
    return make_user("pacs_orthanc", None, site_a)


@pytest.fixture
def stow_node(site_a, pacs_account):
    return DicomNode.objects.create(ae_title="ORTHANC_WEB", host="10.0.0.9", port=4242, site=site_a, sender_account=pacs_account)


def stow(account, *parts):
    content_type, body = multipart(*parts)
    return token_client(account).generic("POST", URL, body, content_type, HTTP_ACCEPT="application/dicom+json")


def received_audit():
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_RECEIVED).order_by("id").values_list("via", "details"))


def test_films_sent_over_dicomweb_are_stored_for_their_patient_and_referenced_in_the_answer(stow_node, pacs_account, patient):
    films = [radiograph(seed=1), radiograph(seed=2, AccessionNumber="ACC-9")]
    response = stow(pacs_account, *[("application/dicom", film) for film in films])
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/dicom+json")
    assert [item[SOP_INSTANCE]["Value"][0] for item in response.json()[REFERENCED]["Value"]] == [sop_uid(film) for film in films]
    assert FAILED not in response.json()
    assert Scan.objects.filter(patient=patient).count() == 2 and Scan.objects.filter(accession_number="ACC-9").exists()
    assert [(via, details["ae_title"], details["outcome"]) for via, details in received_audit()] == [("dicomweb", "ORTHANC_WEB", "analysed")] * 2
    assert stow(pacs_account, ("application/dicom", films[0])).status_code == 200, "a resend is acknowledged"
    assert Scan.objects.count() == 2 and ReceivedInstance.objects.count() == 2


def test_a_part_that_is_not_dicom_is_a_recorded_failure_beside_a_stored_film(stow_node, pacs_account, patient):
    film = radiograph(patient_id="MRN-7777")  # unknown here: held as unmatched, which counts as stored
    response = stow(pacs_account, ("text/plain", b"hello"), ("application/dicom", b"not DICOM at all"), ("application/dicom", film))
    assert response.status_code == 202, response.content
    answer = response.json()
    assert [item[SOP_INSTANCE]["Value"][0] for item in answer[REFERENCED]["Value"]] == [sop_uid(film)]
    assert [item[FAILURE_REASON]["Value"] for item in answer[FAILED]["Value"]] == [[0xC000], [0xC000]]
    reasons = [details.get("reason", "") for _, details in received_audit()]
    assert reasons[0] == "A part of type text/plain, not application/dicom."
    assert reasons[1].startswith("The data is not a readable DICOM dataset")
    assert ReceivedInstance.objects.get().outcome == "unmatched" and not Scan.objects.exists()


def test_when_no_part_can_be_stored_the_answer_is_409_and_nothing_is_kept(stow_node, pacs_account, patient):
    files_before = stored_files()
    broken = radiograph(PixelData=b"\0" * 64)
    response = stow(pacs_account, ("application/dicom", broken))
    assert response.status_code == 409, response.content
    (failure,) = response.json()[FAILED]["Value"]
    assert failure[SOP_INSTANCE]["Value"] == [sop_uid(broken)] and failure[FAILURE_REASON]["Value"] == [0xC000]
    assert "damaged" in received_audit()[0][1]["reason"]
    assert not ReceivedInstance.objects.exists() and not Scan.objects.exists() and stored_files() == files_before


def test_a_body_that_is_not_multipart_dicom_is_refused_with_415_or_400(stow_node, pacs_account):
    api = token_client(pacs_account)
    assert_json_error(api.post(URL, {"a": 1}, format="json"), 415)
    assert_json_error(api.generic("POST", URL, b"--x\r\n", 'multipart/related; type="application/json"; boundary=x'), 415)
    assert_json_error(api.generic("POST", URL, b"no parts here", DICOM_TYPE.format("nothing")), 400)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_RECEIVED).exists()


def test_only_the_account_of_a_node_that_may_send_can_store(stow_node, pacs_account, clinician, patient):
    assert_json_error(stow(clinician, ("application/dicom", radiograph())), 403)
    stow_node.may_send = False
    stow_node.save()
    assert_json_error(stow(pacs_account, ("application/dicom", radiograph())), 403)
    refusals = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_REFUSED).order_by("id")
    assert [(row.actor, row.details["ae_title"], row.details["reason"]) for row in refusals] == [
        (clinician, "", "Your account is not the sender account of any DICOM node."),
        (pacs_account, "ORTHANC_WEB", "The node is registered but not allowed to send.")]
    assert not ReceivedInstance.objects.exists() and not Scan.objects.exists()


def test_without_a_token_nothing_is_read(client, stow_node):
    content_type, body = multipart(("application/dicom", radiograph()))
    assert_json_error(client.generic("POST", URL, body, content_type), 401)


def test_the_account_of_a_node_cannot_use_the_rest_of_the_api(stow_node, pacs_account, patient):
    assert_json_error(token_client(pacs_account).get("/api/v1/patients/"), 403)


def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(stow_node, pacs_account, settings):
    settings.UPLOAD_MAX_REQUEST_BYTES = 1000
    response = stow(pacs_account, ("application/dicom", radiograph()))
    assert_json_error(response, 413)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_RECEIVED).exists()
