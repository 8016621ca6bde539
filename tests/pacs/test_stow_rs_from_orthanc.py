"""The real path of STOW-RS: Orthanc's DICOMweb plugin pushes a film to the portal's live server
with the node account's token (Orthanc's `/dicom-web/servers/<name>/stow` call)."""
import json

import pytest

from diagnosis.models import AuditEvent, Scan
from pacs.models import DicomNode, ReceivedInstance
from tests.api import token_headers
from tests.conftest import make_user
from tests.pacs.conftest import needs_dicomweb, needs_orthanc, radiograph

pytestmark = [pytest.mark.django_db(transaction=True), needs_orthanc, needs_dicomweb]


def test_orthanc_pushes_films_over_stow_rs_and_the_portal_files_them(orthanc, live_server, site_a, patient):
    account = make_user("pacs_orthanc", None, site_a)
    DicomNode.objects.create(ae_title="ORTHANC_WEB", host="127.0.0.1", port=orthanc.dicom_port, site=site_a, sender_account=account)
    server = {"Url": f"{live_server.url}/dicomweb/", "HttpHeaders": {"Authorization": token_headers(account)["HTTP_AUTHORIZATION"]},
              "ChunkedTransfers": False}  # the portal needs a Content-Length (docs/pacs.md)
    assert orthanc.post("/dicom-web/servers/portal", json.dumps(server).encode(), method="PUT")[0] == 200
    matched, unknown = orthanc.upload(radiograph(seed=3)), orthanc.upload(radiograph(patient_id="MRN-5050", seed=4))

    status, answer = orthanc.post("/dicom-web/servers/portal/stow", json.dumps({"Resources": [matched, unknown]}).encode())
    assert status == 200, answer
    scan = Scan.objects.get(patient=patient)
    assert {(row.outcome, row.ae_title) for row in ReceivedInstance.objects.all()} == {("analysed", "ORTHANC_WEB"), ("unmatched", "ORTHANC_WEB")}
    assert ReceivedInstance.objects.get(outcome="analysed").scan == scan
    assert set(AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_RECEIVED).values_list("via", flat=True)) == {"dicomweb"}

    broken = orthanc.upload(radiograph(seed=5, PixelData=b"\0" * 64))
    status, answer = orthanc.post("/dicom-web/servers/portal/stow", json.dumps({"Resources": [broken]}).encode())
    assert status != 200, "Orthanc reports the portal's 409 as a failed push"
    assert ReceivedInstance.objects.count() == 2 and Scan.objects.count() == 1
