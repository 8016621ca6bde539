"""The patient page: compact result cards, one explanation for the page, a viewer per result."""
import pytest
from django.urls import reverse

from diagnosis.models import Prediction

pytestmark = pytest.mark.django_db


@pytest.fixture
def page_with_three_results(clinician_client, patient, add_result, make_version):
    version = make_version(synthetic=True)
    scans = [add_result(patient, version, label, probability, minutes_ago=minutes) for label, probability, minutes in (("covid", 0.9, 1), ("normal", 0.2, 2), ("covid", 0.7, 3))]
    Prediction.objects.filter(scan__in=scans).update(heatmap_name="test/heat.png")
    return clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode(), scans


def test_the_disclaimer_and_the_explanation_appear_once_per_page(page_with_three_results):
    page, _ = page_with_three_results
    assert page.count("Decision support, not a diagnosis") == 1
    assert page.count("How to read these results") == 1


def test_each_result_shows_probability_label_and_model_version(page_with_three_results):
    page, scans = page_with_three_results
    assert page.count("Likely COVID-19 pattern") == 2 and page.count("No COVID-19 pattern found") == 1
    assert "90.0%" in page and "20.0%" in page and "70.0%" in page
    assert page.count('class="badge demo"') == 3
    assert "ROC AUC 0.90" not in page, "its own test split is not quoted as validation"
    assert page.count("not validated on independent sources") == 3


def test_each_result_has_a_viewer_on_the_audited_image_and_heatmap_views(page_with_three_results):
    page, scans = page_with_three_results
    assert page.count('class="viewer"') == 3
    for scan in scans:
        prediction = scan.predictions.get()
        assert reverse("diagnosis:scan_heatmap", args=[scan.pk, prediction.pk]) in page
        if prediction.heatmap_is_map:  # a map is a layer over the film; an older blended heatmap is an image beside it
            assert f'for="opacity-{prediction.pk}"' in page, "the opacity slider has a label"
        assert reverse("diagnosis:scan_dicom", args=[scan.pk]) in page, "the viewer reads the stored film"
    assert page.count('data-action="zoom"') == 6


def test_the_review_form_is_kept_on_each_result(page_with_three_results):
    page, scans = page_with_three_results
    for scan in scans:
        assert reverse("diagnosis:prediction_review", args=[scan.predictions.get().pk]) in page
    assert page.count('name="agrees" value="no"') == 3


def test_no_inline_script_or_handler_on_the_pages(clinician_client, page_with_three_results):
    """A Content-Security-Policy without 'unsafe-inline' is coming: every script is a static file."""
    page, _ = page_with_three_results
    worklist = clinician_client.get(reverse("diagnosis:home")).content.decode()
    for html in (page, worklist):
        assert "<script>" not in html and " onclick=" not in html and " oninput=" not in html and " hx-on" not in html
        assert "vendor/htmx-2.0.11.min.js" in html
