"""The printable one-page report of a scan: what it shows, that reading it is audited, and that
another site's user cannot open it."""
import pytest
from django.urls import reverse
from django.utils import timezone

from diagnosis.models import AuditEvent, Prediction, Review

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed_result(patient, add_result, make_version, clinician):
    scan = add_result(patient, make_version(synthetic=True), "covid", 0.83)
    prediction = scan.predictions.get()
    Prediction.objects.filter(pk=prediction.pk).update(heatmap_name="test/heat.png", heatmap_is_map=True)
    Review.objects.create(prediction=prediction, reviewer=clinician, agrees=True, note="First reading", superseded_at=timezone.now())
    Review.objects.create(prediction=prediction, reviewer=clinician, agrees=False, note="Revised: no consolidation")
    return scan


def test_the_report_shows_patient_images_result_figures_current_review_and_disclaimer(clinician_client, reviewed_result, patient):
    response = clinician_client.get(reverse("diagnosis:scan_report", args=[reviewed_result.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    for shown in ("OKAFOR, Ada", "MRN-0001", "St Elsewhere", "Likely COVID-19 pattern", "83.0%", "threshold 50.0%",
                  "DEMO MODEL", "not validated on independent sources", "Decision support, not a diagnosis", "Revised: no consolidation"):
        assert shown in page, shown
    assert "First reading" not in page, "a revised review is history, not the current reading"
    prediction = reviewed_result.predictions.get()
    assert reverse("diagnosis:scan_heatmap", args=[reviewed_result.pk, prediction.pk]) in page
    assert "data-colour-on-load" in page, "the grey map is coloured as the page loads, so it prints in colour"
    assert "<script>" not in page and "onclick" not in page


def test_reading_the_report_is_audited(clinician_client, clinician, reviewed_result):
    clinician_client.get(reverse("diagnosis:scan_report", args=[reviewed_result.pk]))
    event = AuditEvent.objects.get(action=AuditEvent.Action.REPORT_VIEWED)
    assert (event.actor, event.scan, event.patient) == (clinician, reviewed_result, reviewed_result.patient)


def test_another_sites_user_gets_404_and_nothing_is_recorded_as_read(client, other_site_clinician, reviewed_result):
    client.force_login(other_site_clinician)
    assert client.get(reverse("diagnosis:scan_report", args=[reviewed_result.pk])).status_code == 404
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.REPORT_VIEWED).exists()


def test_each_done_result_links_to_its_report(clinician_client, patient, reviewed_result, add_scan):
    pending = add_scan(patient)
    page = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert page.count("Print report") == 1
    assert reverse("diagnosis:scan_report", args=[reviewed_result.pk]) in page
    assert reverse("diagnosis:scan_report", args=[pending.pk]) not in page
