"""The clinician's finding wherever the AI result is: on worklist rows, as a worklist filter ("AI and
clinician disagree"), on the printable report and in the API's worklist. At a site in its silent
period the finding is shown but nothing that compares it with the withheld AI result."""
import re

import pytest
from django.urls import reverse

from diagnosis import roles, services
from diagnosis.models import Patient, Site
from tests.api import assert_json_error, token_client
from tests.conftest import make_user, signed_in

pytestmark = pytest.mark.django_db

WORKLIST = reverse("diagnosis:home")


def row_of(page, scan):
    return page.split(f'id="row-{scan.pk}"')[1].split("</tr>")[0]


def row_ids(response):
    return re.findall(r'<tr id="row-([0-9a-f-]+)"', response.content.decode())


@pytest.fixture
def read_results(patient, clinician, add_result, make_version):
    """Three finished scans: one the clinician disagreed with, one agreed with, one not reviewed."""
    version = make_version()
    disputed, confirmed, unread = (add_result(patient, version, label, p) for label, p in (("covid", 0.8), ("normal", 0.1), ("normal", 0.2)))
    services.review_prediction(actor=clinician, prediction=disputed.latest_prediction, agrees=False, finding="negative", note="clear lungs")
    services.review_prediction(actor=clinician, prediction=confirmed.latest_prediction, agrees=True, finding="negative")
    return disputed, confirmed, unread


def test_a_worklist_row_shows_each_clinicians_finding_and_whether_they_disagree(clinician_client, read_results):
    disputed, confirmed, unread = read_results
    page = clinician_client.get(WORKLIST).content.decode()
    assert "COVID-19 negative" in row_of(page, disputed) and "disagrees" in row_of(page, disputed)
    assert 'class="finding disagrees"' in row_of(page, disputed)
    assert "COVID-19 negative" in row_of(page, confirmed) and "agrees" in row_of(page, confirmed) and "disagrees" not in row_of(page, confirmed)
    assert "Unreviewed" in row_of(page, unread)


def test_the_worklist_filters_scans_where_ai_and_clinician_disagree(clinician_client, clinician, read_results):
    disputed, confirmed, _ = read_results
    assert row_ids(clinician_client.get(WORKLIST, {"review": "disagreed"})) == [str(disputed.pk)]
    # Revising the review to agree takes the scan off the list: only current reviews count.
    services.review_prediction(actor=clinician, prediction=disputed.latest_prediction, agrees=True, finding="positive")
    assert row_ids(clinician_client.get(WORKLIST, {"review": "disagreed"})) == []
    assert "AI and clinician disagree" in clinician_client.get(WORKLIST).content.decode()


def test_the_api_worklist_carries_the_findings_and_the_disagreement_filter(clinician, read_results):
    disputed, confirmed, unread = read_results
    api = token_client(clinician)
    rows = {row["id"]: row for row in api.get(reverse("api:worklist")).json()["results"]}
    (finding,) = rows[str(disputed.pk)]["clinician_findings"]
    assert (finding["finding"], finding["agrees"], finding["reviewer"], finding["note"]) == ("negative", False, "dr_a", "clear lungs")
    assert rows[str(unread.pk)]["clinician_findings"] == []
    filtered = api.get(reverse("api:worklist"), {"review": "disagreed"}).json()["results"]
    assert [row["id"] for row in filtered] == [str(disputed.pk)]


def test_the_report_gives_the_clinicians_finding_not_only_that_they_disagreed(clinician_client, read_results):
    disputed, _, _ = read_results
    page = clinician_client.get(reverse("diagnosis:scan_report", args=[disputed.pk])).content.decode()
    assert "<strong>COVID-19 negative</strong>" in page and "disagreed with the AI result" in page and "clear lungs" in page


def test_at_a_silent_site_the_finding_is_shown_but_nothing_compares_it_with_the_withheld_result(add_result, make_version):
    site = Site.objects.create(name="Hillside Infirmary", code="hill")  # new: silent
    reader = make_user("dr_hill", roles.CLINICIANS, site)
    patient = Patient.objects.create(site=site, medical_record_number="H-1", family_name="Ndiaye", given_name="Awa")
    scan = add_result(patient, make_version(), "covid", 0.9)
    services.review_prediction(actor=reader, prediction=scan.latest_prediction, finding="negative")
    page = signed_in(reader).get(WORKLIST).content.decode()
    assert "COVID-19 negative" in row_of(page, scan) and "read blind" in row_of(page, scan)
    assert "disagree" not in page.lower()
    assert signed_in(reader).get(WORKLIST, {"review": "disagreed"}).status_code == 200  # the page drops the filter it does not offer
    refused = token_client(reader).get(reverse("api:worklist"), {"review": "disagreed"})
    assert "silent period" in assert_json_error(refused, 400)["error"]
    (finding,) = token_client(reader).get(reverse("api:worklist")).json()["results"][0]["clinician_findings"]
    assert (finding["finding"], finding["agrees"]) == ("negative", None)
