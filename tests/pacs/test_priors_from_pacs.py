"""Fetch chest films from PACS: the patient page asks the real Orthanc for the patient's studies
(C-FIND by record number), and the chosen ones come back by C-MOVE to the portal's real listener,
which files them through the usual intake. One audit row per query and per retrieval."""
import io
import json
import urllib.request

import pydicom
import pytest

from diagnosis.models import AuditEvent, Scan
from pacs.models import ReceivedInstance
from tests.conftest import signed_in
from tests.pacs.conftest import ORTHANC_AET, PORTAL_AET, free_port, needs_dicomweb, needs_orthanc, radiograph

pytestmark = [pytest.mark.django_db(transaction=True), needs_orthanc]


@pytest.fixture
def pacs_with_studies(orthanc, orthanc_node, settings):
    """Orthanc as the site's PACS holding two chest studies and a CT of the patient, and a film of
    someone else; the portal calls it under the AE title Orthanc knows it by."""
    settings.PORTAL_DICOM_AE_TITLE = PORTAL_AET
    with urllib.request.urlopen(f"{orthanc.url}/patients", timeout=30) as response:  # earlier tests' films of the same record number
        for orthanc_id in json.loads(response.read()):
            orthanc.post(f"/patients/{orthanc_id}", None, method="DELETE")
    orthanc_node.serves_priors = True
    orthanc_node.save()
    films = {
        "older": radiograph(seed=11, StudyDate="20240105", StudyDescription="CHEST PA", AccessionNumber="A-1"),
        "newer": radiograph(seed=12, StudyDate="20250302", StudyDescription="CHEST AP"),
        "ct": radiograph(seed=13, modality="CT", StudyDate="20250101", StudyDescription="CT THORAX"),
        "other": radiograph(seed=14, patient_id="MRN-0002", name="DOE^Jane"),
    }
    for film in films.values():
        orthanc.upload(film)
    return {name: study_uid(film) for name, film in films.items()}


def study_uid(data):
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID


URL = "/patients/{}/pacs-studies/"


def audit_rows(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_a_clinician_lists_the_patients_studies_in_the_pacs_and_fetches_one(dicom_listener, pacs_with_studies, clinician, patient):
    page = signed_in(clinician).get(f"/patients/{patient.pk}/")
    assert "Fetch chest films from PACS" in page.content.decode()

    client = signed_in(clinician)
    listing = client.get(URL.format(patient.pk))
    assert listing.status_code == 200
    html = listing.content.decode()
    assert html.index("2025-03-02") < html.index("2024-01-05") and "CHEST PA" in html and "A-1" in html
    assert "CT THORAX" in html and "not a radiograph" in html and pacs_with_studies["other"] not in html
    (query,) = audit_rows(AuditEvent.Action.DICOM_QUERIED)
    assert query.details["ae_title"] == ORTHANC_AET and query.actor == clinician and query.patient == patient
    assert set(query.details["studies"]) == {pacs_with_studies[name] for name in ("older", "newer", "ct")}

    fetched = client.post(URL.format(patient.pk), {"studies": [pacs_with_studies["older"]]}, follow=True)
    assert "1 image from ORTHANC_TEST: 1 analysed." in fetched.content.decode()
    scan = Scan.objects.get(patient=patient)
    assert scan.study_instance_uid == pacs_with_studies["older"] and scan.accession_number == "A-1"
    (retrieval,) = audit_rows(AuditEvent.Action.DICOM_RETRIEVED)
    assert retrieval.details["ae_title"] == ORTHANC_AET and retrieval.details["outcomes"] == ["analysed"] and retrieval.details["completed"] == 1
    assert audit_rows(AuditEvent.Action.DICOM_RECEIVED)[0].details["ae_title"] == ORTHANC_AET


@needs_dicomweb
def test_a_pacs_with_a_dicomweb_url_is_asked_over_qido_rs_and_its_films_fetched_over_wado_rs(pacs_with_studies, orthanc, orthanc_node, clinician, patient):
    orthanc_node.dicomweb_url = f"{orthanc.url}/dicom-web/"
    orthanc_node.save()
    client = signed_in(clinician)
    listing = client.get(URL.format(patient.pk)).content.decode()
    assert "2025-03-02" in listing and "CHEST PA" in listing and pacs_with_studies["other"] not in listing
    fetched = client.post(URL.format(patient.pk), {"studies": [pacs_with_studies["newer"], pacs_with_studies["older"]]}, follow=True).content.decode()
    assert fetched.count("1 image from ORTHANC_TEST: 1 analysed.") == 2
    assert set(Scan.objects.filter(patient=patient).values_list("study_instance_uid", flat=True)) == {pacs_with_studies[name] for name in ("newer", "older")}
    assert [row.details["protocol"] for row in audit_rows(AuditEvent.Action.DICOM_QUERIED)] == ["QIDO-RS"]
    assert [(row.details["protocol"], row.details["completed"]) for row in audit_rows(AuditEvent.Action.DICOM_RETRIEVED)] == [("WADO-RS", 1), ("WADO-RS", 1)]
    assert {row.via for row in audit_rows(AuditEvent.Action.DICOM_RECEIVED)} == {"dicomweb"}


def test_only_a_study_the_query_returned_for_this_patient_can_be_fetched(dicom_listener, pacs_with_studies, clinician, patient):
    client = signed_in(clinician)
    client.get(URL.format(patient.pk))
    refused = client.post(URL.format(patient.pk), {"studies": [pacs_with_studies["other"]]})
    assert refused.status_code == 400 and "is not one of the available choices" in refused.content.decode()
    assert not audit_rows(AuditEvent.Action.DICOM_RETRIEVED) and not ReceivedInstance.objects.exists()


def test_a_pacs_that_is_down_is_said_in_words_and_the_query_audited(orthanc_node, clinician, patient):
    orthanc_node.serves_priors, orthanc_node.port = True, free_port()  # nothing listens there
    orthanc_node.save()
    page = signed_in(clinician).get(URL.format(patient.pk))
    assert page.status_code == 200 and f"The PACS {ORTHANC_AET} at 127.0.0.1:{orthanc_node.port} did not answer" in page.content.decode()
    (query,) = audit_rows(AuditEvent.Action.DICOM_QUERIED)
    assert "did not answer" in query.details["error"]


def test_another_sites_clinician_cannot_query_for_the_patient(orthanc_node, other_site_clinician, patient):
    orthanc_node.serves_priors = True
    orthanc_node.save()
    assert signed_in(other_site_clinician).get(URL.format(patient.pk)).status_code == 404
    assert not audit_rows(AuditEvent.Action.DICOM_QUERIED)


def test_without_a_pacs_serving_priors_the_patient_page_offers_no_fetch(clinician, patient):
    assert "Fetch chest films from PACS" not in signed_in(clinician).get(f"/patients/{patient.pk}/").content.decode()
    assert "No PACS of St Elsewhere is registered" in signed_in(clinician).get(URL.format(patient.pk)).content.decode()


@pytest.mark.browser
def test_the_fetch_page_in_a_browser(dicom_listener, pacs_with_studies, live_server, clinician, patient):
    from tests.diagnosis.test_browser import expect, log_in, screenshot

    from .browser import chromium_page
    with chromium_page() as page:
        log_in(page, live_server.url, clinician.username)
        page.goto(f"{live_server.url}/patients/{patient.pk}/")
        page.get_by_role("link", name="Fetch chest films from PACS").click()
        expect(page.get_by_role("cell", name="CT THORAX")).to_be_visible()
        screenshot(page, "pacs-studies")
        page.get_by_label("Fetch the study of 2025-03-02").check()
        page.get_by_role("button", name="Fetch the chosen studies").click()
        expect(page.locator(".message.success")).to_have_text("1 image from ORTHANC_TEST: 1 analysed.")
        scan = Scan.objects.get(patient=patient)
        expect(page.locator(f"#scan-{scan.pk}")).to_be_visible()  # the fetched film's card, as an upload's
        screenshot(page, "pacs-studies-fetched")
    assert scan.study_instance_uid == pacs_with_studies["newer"]
