"""The worklist: scans across the patients a user may see, in triage order, filtered, paged."""
import datetime
import re

import pytest
from django.test import Client
from django.urls import reverse

from diagnosis.models import Patient, Scan
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

WORKLIST = reverse("diagnosis:home")


def row_ids(response):
    return re.findall(r'<tr id="row-([0-9a-f-]+)"', response.content.decode())


@pytest.fixture
def other_patient(site_b):
    return Patient.objects.create(site=site_b, medical_record_number="CG-7", family_name="Lindqvist", given_name="Eva")


def test_worklist_is_the_first_page_and_first_in_the_top_bar(clinician_client):
    page = clinician_client.get(WORKLIST).content.decode()
    assert "<h1>Worklist</h1>" in page
    nav = page.split("<nav>")[1].split("</nav>")[0]
    assert nav.index(">Worklist<") < nav.index(">Patients<")


def test_shows_only_scans_of_patients_the_user_may_see(clinician_client, patient, other_patient, add_scan):
    mine, theirs = add_scan(patient), add_scan(other_patient)
    ids = row_ids(clinician_client.get(WORKLIST))
    assert ids == [str(mine.pk)] and str(theirs.pk) not in ids


def test_each_row_says_which_study_it_is(clinician_client, patient, add_scan):
    """Five films of one patient sent together must be told apart on the worklist too."""
    scan = add_scan(patient)
    Scan.objects.filter(pk=scan.pk).update(
        study_date=datetime.date(2026, 1, 2), view_position="PA", accession_number="ACC-1001", original_filename="ward3_left.dcm",
    )
    row = clinician_client.get(WORKLIST).content.decode().split(f'id="row-{scan.pk}"')[1].split("</tr>")[0]
    for shown in ("study 2 Jan 2026 · PA", "accession ACC-1001", "ward3_left.dcm"):
        assert shown in row, shown


def test_likely_positive_unreviewed_results_come_first_then_the_newest(clinician_client, clinician, patient, add_scan, add_result, make_version):
    version = make_version()
    old_positive = add_result(patient, version, "covid", 0.8, minutes_ago=50)
    reviewed_positive = add_result(patient, version, "covid", 0.9, minutes_ago=5, reviewed_by=clinician)
    negative = add_result(patient, version, "normal", 0.1, minutes_ago=3)
    waiting = add_scan(patient, minutes_ago=1)
    failed = add_scan(patient, Scan.Status.FAILED, minutes_ago=10)
    expected = [old_positive, waiting, negative, reviewed_positive, failed]
    assert row_ids(clinician_client.get(WORKLIST)) == [str(scan.pk) for scan in expected]


def test_a_result_and_its_review_move_the_scan_through_the_triage_order(clinician_client, clinician, patient, add_scan, make_version):
    """The order is read from the scan's own columns: the services that record a result and a
    review keep them, so the row moves without any per-request computation."""
    from diagnosis import services
    from jobs import lifecycle

    version = make_version()
    newer = add_scan(patient, Scan.Status.DONE, minutes_ago=1)
    scan = add_scan(patient, Scan.Status.QUEUED, minutes_ago=30)
    scan = lifecycle.claim(Scan, scan.pk)  # as the worker does before it predicts
    result = {"label": "covid", "probabilities": {"covid": 0.8, "normal": 0.2}, "positive_probability": 0.8, "threshold": 0.5}
    prediction = services.record_prediction(scan=scan, model_version=version, result=result, heatmap_name="", inference_ms=5)
    assert row_ids(clinician_client.get(WORKLIST)) == [str(scan.pk), str(newer.pk)], "a likely positive result nobody reviewed comes first"
    assert row_ids(clinician_client.get(WORKLIST, {"review": "unreviewed", "result": "positive"})) == [str(scan.pk)]

    response = clinician_client.post(reverse("diagnosis:prediction_review", args=[prediction.pk]), {"finding": "positive", "agrees": "yes", "note": ""})
    assert response.status_code == 302
    assert row_ids(clinician_client.get(WORKLIST)) == [str(newer.pk), str(scan.pk)], "once reviewed, it takes its place by time"
    assert row_ids(clinician_client.get(WORKLIST, {"review": "reviewed"})) == [str(scan.pk)]


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"status": "queued"}, ["waiting"]),
        ({"status": "processing"}, ["analysing"]),
        ({"status": "failed"}, ["failed"]),
        ({"result": "positive"}, ["positive"]),
        ({"result": "negative"}, ["reviewed_negative"]),
        ({"review": "reviewed"}, ["reviewed_negative"]),
        ({"review": "unreviewed"}, ["positive"]),
        ({"result": "positive", "review": "reviewed"}, []),
    ],
)
def test_filters_by_status_result_and_review(clinician_client, clinician, patient, add_scan, add_result, make_version, query, expected):
    version = make_version()
    scans = {
        "waiting": add_scan(patient),
        "analysing": add_scan(patient, Scan.Status.RUNNING),
        "failed": add_scan(patient, Scan.Status.FAILED),
        "positive": add_result(patient, version, "covid", 0.7),
        "reviewed_negative": add_result(patient, version, "normal", 0.2, reviewed_by=clinician),
    }
    assert sorted(row_ids(clinician_client.get(WORKLIST, query))) == sorted(str(scans[name].pk) for name in expected)


def test_filters_by_upload_date(clinician_client, patient, add_scan):
    today, last_week = add_scan(patient), add_scan(patient, minutes_ago=7 * 24 * 60)
    day = last_week.uploaded_at.date().isoformat()
    assert row_ids(clinician_client.get(WORKLIST, {"date_from": day, "date_to": day})) == [str(last_week.pk)]
    assert row_ids(clinician_client.get(WORKLIST, {"date_from": today.uploaded_at.date().isoformat()})) == [str(today.pk)]


def test_reversed_dates_are_refused_in_one_sentence_and_the_list_stays(clinician_client, patient, add_scan):
    scan = add_scan(patient)
    response = clinician_client.get(WORKLIST, {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert "is after the" in response.content.decode()
    assert row_ids(response) == [str(scan.pk)]


def test_administrators_filter_by_site_and_clinicians_cannot(clinician_client, site_a, site_b, patient, other_patient, add_scan):
    here, there = add_scan(patient), add_scan(other_patient)
    client = Client()
    client.force_login(make_user("admin_x", "Administrators", site_a))
    assert sorted(row_ids(client.get(WORKLIST))) == sorted([str(here.pk), str(there.pk)])
    assert row_ids(client.get(WORKLIST, {"site": site_b.pk})) == [str(there.pk)]
    assert 'name="site"' not in clinician_client.get(WORKLIST).content.decode()
    assert row_ids(clinician_client.get(WORKLIST, {"site": site_b.pk})) == [str(here.pk)], "a site filter never widens what a clinician sees"


def test_a_row_names_the_patient_and_the_model_behind_the_result(clinician_client, patient, add_result, make_version):
    add_result(patient, make_version(synthetic=True), "covid", 0.87)
    page = clinician_client.get(WORKLIST).content.decode()
    for text in ("OKAFOR, Ada", "MRN MRN-0001", "Likely positive", "87.0%", "DEMO MODEL", "Unreviewed", reverse("diagnosis:patient_detail", args=[patient.pk])):
        assert text in page, text


def test_a_version_without_figures_is_marked_unevaluated(clinician_client, patient, add_result, make_version):
    version = make_version()
    version.metrics = {}
    type(version).objects.filter(pk=version.pk).update(metrics={})
    add_result(patient, version, "normal", 0.1)
    assert "unevaluated" in clinician_client.get(WORKLIST).content.decode()


def test_pages_of_25(clinician_client, patient, add_scan):
    for minutes in range(30):
        add_scan(patient, minutes_ago=minutes)
    assert len(row_ids(clinician_client.get(WORKLIST))) == 25
    second = clinician_client.get(WORKLIST, {"page": 2, "status": "queued"})
    assert len(row_ids(second)) == 5
    assert "status=queued" in second.content.decode().split('rel="prev"')[0].rsplit("<a", 1)[1], "paging keeps the filters"


def test_a_long_worklist_is_counted_up_to_a_cap_and_still_pages_to_its_end(clinician_client, patient, add_scan, monkeypatch):
    """Counting 100,000 scans costs more than showing 25 of them; past the cap the list says
    "more than" and pages on by looking one row ahead."""
    from diagnosis.paging import CappedPaginator

    monkeypatch.setattr(CappedPaginator, "cap", 10)
    for minutes in range(30):
        add_scan(patient, minutes_ago=minutes)
    first = clinician_client.get(WORKLIST)
    text = first.content.decode()
    assert len(row_ids(first)) == 25 and "More than 10 scans." in text and 'rel="next"' in text and " of " not in text.split("Page 1")[1][:8]
    second = clinician_client.get(WORKLIST, {"page": 2})
    assert len(row_ids(second)) == 5 and 'rel="next"' not in second.content.decode() and 'rel="prev"' in second.content.decode()
    assert set(row_ids(first)).isdisjoint(row_ids(second))
    assert clinician_client.get(WORKLIST, {"page": "x"}).status_code == clinician_client.get(WORKLIST, {"page": 9}).status_code == 200
