"""Live updates: a pending card or row asks whether its scan changed and is replaced alone."""
import pytest
from django.urls import reverse

from diagnosis.models import Patient, Scan

pytestmark = pytest.mark.django_db


def card_url(scan, shown):
    return reverse("diagnosis:scan_card", args=[scan.pk]) + f"?shown={shown}"


def row_url(scan, shown):
    return reverse("diagnosis:worklist_row", args=[scan.pk]) + f"?shown={shown}"


def test_a_pending_card_polls_for_itself_only(clinician_client, patient, add_scan):
    scan = add_scan(patient)
    page = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert f'hx-get="{card_url(scan, "queued")}"' in page
    assert "data-live-url" not in page, "the whole history is no longer replaced"


def test_an_unchanged_scan_answers_204_so_nothing_is_swapped(clinician_client, patient, add_scan):
    scan = add_scan(patient, Scan.Status.RUNNING)
    assert clinician_client.get(card_url(scan, "processing")).status_code == 204
    assert clinician_client.get(row_url(scan, "processing")).status_code == 204


def test_a_finished_scan_sends_its_card_which_no_longer_polls(clinician_client, patient, add_result, make_version):
    scan = add_result(patient, make_version(), "covid", 0.9)
    response = clinician_client.get(card_url(scan, "processing"))
    card = response.content.decode()
    assert response.status_code == 200 and card.lstrip().startswith(f'<article class="scan status-done" id="scan-{scan.pk}"')
    assert "hx-trigger" not in card
    assert 'name="note"' in card, "the finished card brings its review form"


def test_a_finished_scan_sends_its_worklist_row(clinician_client, patient, add_result, make_version):
    scan = add_result(patient, make_version(), "normal", 0.1)
    row = clinician_client.get(row_url(scan, "queued")).content.decode()
    assert row.lstrip().startswith(f'<tr id="row-{scan.pk}"') and "hx-trigger" not in row and "Negative" in row


def test_cards_and_rows_of_another_site_are_not_found(clinician_client, site_b, add_scan):
    elsewhere = Patient.objects.create(site=site_b, medical_record_number="CG-1", family_name="Berg", given_name="Ola")
    scan = add_scan(elsewhere)
    assert clinician_client.get(card_url(scan, "done")).status_code == 404
    assert clinician_client.get(row_url(scan, "done")).status_code == 404


def test_an_ended_session_gets_the_login_redirect_not_a_card(client, patient, add_scan):
    scan = add_scan(patient)
    response = client.get(card_url(scan, "done"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def news(client, since, **filters):
    return client.get(reverse("diagnosis:worklist_news"), {"since": since.isoformat(), **filters})


def test_the_worklist_announces_new_scans_instead_of_moving_its_rows(clinician_client, patient, site_b, add_scan):
    page = clinician_client.get(reverse("diagnosis:home")).content.decode()
    assert 'hx-get="/worklist/news/?since=' in page
    before = add_scan(patient, minutes_ago=5)
    since = before.uploaded_at
    assert news(clinician_client, since).status_code == 204
    add_scan(patient)
    add_scan(Patient.objects.create(site=site_b, medical_record_number="CG-2", family_name="Berg", given_name="Ola"))
    response = news(clinician_client, since)
    assert response.status_code == 200 and "1 new scan since this list was shown" in response.content.decode()
    assert news(clinician_client, since, status="failed").status_code == 204, "the list's filters apply to what is announced"
