"""The DICOM nodes page: administrators list, register, change and remove nodes under the API's
rules, every change audited; nobody else sees it. Driven through Django's client and, once, in
Debian's Chromium from the top bar."""
import pytest

from diagnosis.models import AuditEvent
from pacs.models import DicomNode
from tests.conftest import signed_in

FORM = {"ae_title": "ORTHANC", "host": "10.0.0.5", "port": "4242", "dicomweb_url": "", "site": "", "may_send": "on"}


def trail():
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_NODE_CHANGED).order_by("id"))


def test_an_administrator_registers_changes_and_removes_a_node_on_the_page(administrator, site_a, clinician):
    client = signed_in(administrator)
    assert 'href="/dicom-nodes/"' in client.get("/").content.decode()
    assert "No node is registered" in client.get("/dicom-nodes/").content.decode()

    created = client.post("/dicom-nodes/new/", {**FORM, "site": site_a.pk, "sender_account": clinician.username})
    assert created.status_code == 302, created.content.decode()
    node = DicomNode.objects.get()
    assert (node.ae_title, node.site, node.may_send, node.serves_priors, node.sender_account) == ("ORTHANC", site_a, True, False, clinician)
    assert "ORTHANC" in client.get("/dicom-nodes/").content.decode()

    changed = client.post(f"/dicom-nodes/{node.pk}/", {**FORM, "site": site_a.pk, "serves_priors": "on"})
    assert changed.status_code == 302
    node.refresh_from_db()
    assert node.serves_priors and node.sender_account is None

    assert client.post(f"/dicom-nodes/{node.pk}/delete/").status_code == 302
    assert not DicomNode.objects.exists()
    rows = trail()
    assert [row.details.get("changes", {}).get("serves_priors") for row in rows[:2]] == [[None, False], [False, True]]
    assert rows[1].details["changes"]["sender_account"] == [clinician.username, ""]
    assert rows[2].details == {"ae_title": "ORTHANC", "removed": True}
    assert {(row.actor, row.via) for row in rows} == {(administrator, "web")}


def test_a_bad_node_is_refused_with_its_reason_and_nothing_saved(administrator, site_a):
    client = signed_in(administrator)
    DicomNode.objects.create(ae_title="ORTHANC", host="10.0.0.5", port=4242, site=site_a)
    for bad, sentence in (({"ae_title": "A\\B"}, "An AE title is 1 to 16 printable characters"),
                          ({"ae_title": "ORTHANC"}, "already exists"),
                          ({"ae_title": "OTHER", "port": "70000"}, "less than or equal to 65535")):
        page = client.post("/dicom-nodes/new/", {**FORM, "site": site_a.pk, **bad})
        assert page.status_code == 400 and sentence in page.content.decode()
    assert DicomNode.objects.count() == 1 and not trail()


@pytest.mark.parametrize("path", ["/dicom-nodes/", "/dicom-nodes/new/"])
def test_a_clinician_may_not_see_or_change_nodes(clinician, path):
    client = signed_in(clinician)
    assert client.get(path).status_code == 403
    assert client.post(path, FORM).status_code == 403
    assert 'href="/dicom-nodes/"' not in client.get("/").content.decode()
    assert not DicomNode.objects.exists()


def test_a_clinician_may_not_remove_a_node(clinician, site_a):
    node = DicomNode.objects.create(ae_title="ORTHANC", host="10.0.0.5", port=4242, site=site_a)
    assert signed_in(clinician).post(f"/dicom-nodes/{node.pk}/delete/").status_code == 403
    assert DicomNode.objects.filter(pk=node.pk).exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_administrator_registers_a_pacs_from_the_top_bar_in_a_browser(live_server, administrator, site_a):
    from tests.diagnosis.test_browser import expect, log_in, screenshot

    from .browser import chromium_page
    with chromium_page() as page:
        page.goto(f"{live_server.url}/")
        log_in(page, live_server.url, administrator.username)
        page.get_by_role("link", name="DICOM nodes").click()
        page.get_by_role("link", name="Register a node").click()
        page.get_by_label("AE title").fill("HOSPITAL_PACS")
        page.get_by_label("Host").fill("10.1.2.3")
        page.get_by_label("Port").fill("4242")
        page.get_by_label("Site").select_option(label=str(site_a))
        page.get_by_label("Earlier films are fetched from it").check()
        screenshot(page, "dicom-node-form")
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("status")).to_have_text("HOSPITAL_PACS registered.")
        expect(page.get_by_role("cell", name="10.1.2.3:4242")).to_be_visible()
        screenshot(page, "dicom-nodes")
    node = DicomNode.objects.get()
    assert (node.ae_title, node.serves_priors, node.site) == ("HOSPITAL_PACS", True, site_a)
    assert AuditEvent.objects.get(action=AuditEvent.Action.DICOM_NODE_CHANGED).via == "web"
