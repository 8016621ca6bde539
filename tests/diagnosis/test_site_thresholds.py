"""Local validation: an administrator re-fits a version's threshold on one site's reviewed scans,
sees the figures at the old and the new threshold first, confirms, and from then on that site's
scans are decided by it; each prediction records which threshold made it."""
import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from diagnosis.inference import analyse_scan
from diagnosis.models import AuditEvent, Review, SiteThreshold

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_web(administrator):
    client = Client()
    client.force_login(administrator)
    return client


def reviewed_results(add_result, patient, version, clinician, n_each):
    """n_each scans that clinicians confirmed as positive and as negative, with spread probabilities;
    two of the 'positive' answers were corrected to negative by the reviewer."""
    for i in range(n_each):
        add_result(patient, version, version.positive_class, 0.55 + 0.4 * i / n_each, reviewed_by=clinician)
        add_result(patient, version, "normal", 0.05 + 0.3 * i / n_each, reviewed_by=clinician)
    for review in Review.objects.filter(prediction__positive_probability__lt=0.6, prediction__label=version.positive_class)[:2]:
        review.agrees = False
        review.save()


def fit_url(version, site):
    return reverse("diagnosis:site_threshold_fit", args=[version.pk, site.pk])


def test_too_few_reviewed_scans_are_refused_with_the_minimum_in_the_sentence(admin_web, add_result, patient, clinician, site_a, make_version):
    version = make_version()
    reviewed_results(add_result, patient, version, clinician, 12)
    page = admin_web.get(fit_url(version, site_a)).content.decode()
    assert "needs at least 20 reviewed scans of each class read by" in page and "it has 10 covid and 14 other" in page
    assert admin_web.post(fit_url(version, site_a), {"threshold": "0.5"}).status_code == 400
    assert not SiteThreshold.objects.exists()


def test_the_figures_are_shown_before_the_fit_takes_effect_then_the_site_uses_it(
    admin_web, clinician_client, clinician, add_result, patient, site_a, active_model_version, clinician_scan
):
    version = active_model_version
    reviewed_results(add_result, patient, version, clinician, 22)
    page = admin_web.get(fit_url(version, site_a)).content.decode()
    assert "The version&#x27;s (now)" in page or "The version's (now)" in page
    assert page.count("(95% CI") == 4, "sensitivity and specificity with CIs at the old and the new threshold"
    assert not SiteThreshold.objects.exists(), "looking at the figures changes nothing"

    threshold = float(page.split('name="threshold" value="')[1].split('"')[0])
    assert admin_web.post(fit_url(version, site_a), {"threshold": str(threshold + 0.01)}).status_code == 400, "figures not shown are refused"
    assert admin_web.post(fit_url(version, site_a), {"threshold": repr(threshold)}).status_code == 302
    fitted = SiteThreshold.objects.get()
    assert (fitted.version, fitted.site, fitted.threshold) == (version, site_a, threshold)
    assert fitted.figures["n_positive"] == 20 and fitted.figures["n_negative"] == 24
    assert fitted.figures["site_threshold"]["sensitivity"]["ci"][0] is not None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SITE_THRESHOLD_SET).count() == 1
    assert f"{threshold:.3f} (site)" in admin_web.get(reverse("diagnosis:site_threshold_list", args=[version.pk])).content.decode()

    prediction = analyse_scan(clinician_scan.pk)  # what the inference worker runs for the scan
    assert prediction.threshold_source == "site" and prediction.site_threshold == fitted and prediction.threshold == threshold
    assert prediction.is_positive == (prediction.positive_probability >= threshold)
    page = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]), {"scan": clinician_scan.pk}).content.decode()
    assert "this site's threshold" in page, "the history page that holds the scan"
    api = APIClient()
    api.force_authenticate(clinician)
    body = api.get(reverse("api:scan_detail", args=[clinician_scan.pk])).json()
    assert body["predictions"][0]["threshold_source"] == "site"


def test_another_sites_scans_keep_the_versions_threshold(add_result, patient, clinician, site_a, site_b, active_model_version, other_site_clinician):
    from diagnosis import scan_intake
    from django.core.files.uploadedfile import SimpleUploadedFile
    from diagnosis.models import Patient
    from tests.images import png_bytes

    SiteThreshold.objects.create(version=active_model_version, site=site_a, threshold=0.999, figures={}, created_by=None)
    other = Patient.objects.create(site=site_b, medical_record_number="MRN-B", family_name="B", given_name="B", created_by=other_site_clinician)
    (scan,) = scan_intake.submit_scans(actor=other_site_clinician, patient=other, uploaded_files=[SimpleUploadedFile("x.png", png_bytes())])
    prediction = analyse_scan(scan.pk)
    assert prediction.threshold_source == "version" and prediction.threshold == active_model_version.threshold


def test_only_administrators_fit_thresholds(clinician_client, site_a, make_version):
    version = make_version()
    assert clinician_client.get(fit_url(version, site_a)).status_code == 403
    assert clinician_client.post(fit_url(version, site_a), {"threshold": "0.5"}).status_code == 403
