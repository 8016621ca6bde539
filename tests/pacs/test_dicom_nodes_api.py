"""Administrators register the PACS and modalities that may send films; nobody else sees them."""
import pytest

from diagnosis.models import AuditEvent
from pacs.models import DicomNode
from tests.api import assert_json_error, token_client

URL = "/api/v1/dicom-nodes/"
NODE = {"ae_title": "ORTHANC", "host": "10.0.0.5", "port": 4242, "site": "ste", "may_send": True, "receives_results": True}


def test_an_administrator_registers_changes_and_removes_a_node(administrator):
    api = token_client(administrator)
    created = api.post(URL, NODE, format="json")
    assert created.status_code == 201, created.content
    node_id = created.json()["id"]
    listed = api.get(URL).json()
    assert [node["ae_title"] for node in listed.get("results", listed)] == ["ORTHANC"]
    assert api.get(f"{URL}{node_id}/").json()["site"] == "ste"

    changed = api.patch(f"{URL}{node_id}/", {"may_send": False}, format="json")
    assert changed.status_code == 200 and changed.json()["may_send"] is False
    assert DicomNode.objects.get(pk=node_id).may_send is False

    assert api.delete(f"{URL}{node_id}/").status_code == 204
    assert not DicomNode.objects.exists()
    trail = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_NODE_CHANGED).order_by("id")
    assert [row.details.get("changes", {}).get("may_send") for row in trail[:2]] == [[None, True], [True, False]]
    assert trail.last().details == {"ae_title": "ORTHANC", "removed": True}
    assert {row.actor for row in trail} == {administrator} and {row.via for row in trail} == {"api"}


def test_an_ae_title_is_unique_and_well_formed(administrator):
    api = token_client(administrator)
    assert api.post(URL, NODE, format="json").status_code == 201
    assert_json_error(api.post(URL, NODE, format="json"), 400, "invalid")
    assert_json_error(api.post(URL, {**NODE, "ae_title": "A\\B"}, format="json"), 400, "invalid")
    assert_json_error(api.post(URL, {**NODE, "ae_title": "SEVENTEEN_LETTERS"}, format="json"), 400, "invalid")
    assert_json_error(api.post(URL, {**NODE, "ae_title": "OTHER", "port": 70000}, format="json"), 400, "invalid")
    assert_json_error(api.post(URL, {**NODE, "ae_title": "OTHER", "site": "nowhere"}, format="json"), 400, "invalid")
    assert DicomNode.objects.count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_clinician_may_not_see_or_register_nodes(clinician, method):
    response = getattr(token_client(clinician), method)(URL, NODE, format="json")
    assert_json_error(response, 403)
    assert not DicomNode.objects.exists()


def test_administrators_find_unmatched_instances_in_admin_and_clinicians_do_not(administrator, clinician, site_a):
    from pacs.models import ReceivedInstance
    from tests.conftest import signed_in

    node = DicomNode.objects.create(ae_title="ORTHANC", host="127.0.0.1", port=4242, site=site_a)
    ReceivedInstance.objects.create(sop_instance_uid="1.2.3.4", node=node, ae_title="ORTHANC", outcome="unmatched",
                                    reason="No patient with record number X-1 at St Elsewhere.", header_patient_id="X-1")
    page = signed_in(administrator).get("/admin/pacs/receivedinstance/?outcome__exact=unmatched")
    assert page.status_code == 200 and "No patient with record number X-1" in page.content.decode()
    assert signed_in(clinician).get("/admin/pacs/receivedinstance/").status_code in (302, 403)
