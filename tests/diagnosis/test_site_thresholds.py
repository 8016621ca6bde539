"""Local validation: an administrator re-fits a version's threshold and calibration on one site's
blind reads (made in its silent period; reads made with the AI result visible are never used), sees the figures (calibration error before and after, sensitivity and specificity
at the old and the new threshold) first, confirms, and from then on that site's scans are
recalibrated and decided by the fit; each prediction records which threshold and calibration made it.

Expected figures are computed here from the probabilities and findings the tests create, with this
file's own arithmetic (sigmoid, bins, log-loss), not with the code under test."""
import math
import re
from contextlib import contextmanager

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils.timezone import localtime
from rest_framework.test import APIClient

from diagnosis import roles, scan_intake, services
from diagnosis.inference import analyse_scan
from diagnosis.models import AuditEvent, Patient, Review, Site, SiteThreshold
from tests.conftest import make_user
from tests.images import png_bytes

pytestmark = pytest.mark.django_db

# (version's positive probability: how many scans) whose clinicians found them positive, and negative.
# An overconfident version: a quarter of its 0.97s are negative, a third of its 0.15s... and so on.
FOUND_POSITIVE = {0.97: 8, 0.85: 6, 0.65: 3, 0.35: 2, 0.15: 1}
FOUND_NEGATIVE = {0.97: 2, 0.85: 3, 0.65: 3, 0.35: 4, 0.15: 4, 0.03: 4}


@pytest.fixture
def admin_web(administrator):
    client = Client()
    client.force_login(administrator)
    return client


def fit_url(version, site):
    return reverse("diagnosis:site_threshold_fit", args=[version.pk, site.pk])


# --- this file's own arithmetic ----------------------------------------------------------------

def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def logit(p):
    return math.log(p / (1 - p))


def with_temperature(p, temperature):
    return sigmoid(logit(p) / temperature)


def log_loss(pairs, temperature=1.0):
    """pairs: (probability, is positive)."""
    return -sum(math.log(with_temperature(p, temperature) if y else 1 - with_temperature(p, temperature)) for p, y in pairs) / len(pairs)


def expected_calibration_error(pairs):
    """Over ten equal-width bins: the share of scans in a bin times |mean probability - positive rate|."""
    bins = {}
    for p, y in pairs:
        bins.setdefault(min(int(p * 10), 9), []).append((p, y))
    return sum(len(b) / len(pairs) * abs(sum(p for p, _ in b) / len(b) - sum(y for _, y in b) / len(b)) for b in bins.values())


def design_pairs():
    return [(p, True) for p, n in FOUND_POSITIVE.items() for _ in range(n)] + [(p, False) for p, n in FOUND_NEGATIVE.items() for _ in range(n)]


# --- scans, results and reviews, through the services ----------------------------------------

@contextmanager
def silent_period(site):
    """The site silent while the block runs, so its clinicians' reads are blind (ai_visibility), then as it was."""
    mode, site.mode = site.mode, Site.Mode.SILENT
    site.save(update_fields=["mode"])
    try:
        yield
    finally:
        site.mode = mode
        site.save(update_fields=["mode"])


def read(clinician, prediction, finding):
    """A blind read when the clinician's site is silent, else a review beside the shown result."""
    blind = prediction.scan.patient.site.mode == Site.Mode.SILENT
    said_positive = prediction.label == prediction.model_version.positive_class
    agrees = None if blind else (finding == "positive") == said_positive
    services.review_prediction(actor=clinician, prediction=prediction, finding=finding, agrees=agrees)


def reviewed_with_findings(add_result, patient, version, clinician, found_positive, found_negative, blind=True):
    """A result per scan with the given probability, each read by the clinician with a finding
    (services.review_prediction): blind, in a silent period of the site, unless `blind` is False."""
    predictions = []
    with silent_period(patient.site) if blind else _as_it_is():
        for finding, counts in (("positive", found_positive), ("negative", found_negative)):
            for probability, n in counts.items():
                for _ in range(n):
                    label = version.positive_class if probability >= 0.5 else "normal"
                    prediction = add_result(patient, version, label, probability).latest_prediction
                    read(clinician, prediction, finding)
                    predictions.append(prediction)
    return predictions


@contextmanager
def _as_it_is():
    yield


def indeterminate_and_revised_reviews(add_result, patient, version, clinician, site):
    """Three scans the version called positive at 0.97 whose blind read is indeterminate (left out;
    counted as positives they would change every figure), one whose reader revised 'positive' to
    'indeterminate', and one a second clinician later found negative after the first said positive
    (truth: the newest read, negative; it is one of FOUND_NEGATIVE's, so the caller leaves one out)."""
    second = make_user("dr_a2", roles.CLINICIANS, site)
    with silent_period(site):
        for _ in range(3):
            read(clinician, add_result(patient, version, version.positive_class, 0.97).latest_prediction, "indeterminate")
        revised = add_result(patient, version, version.positive_class, 0.97).latest_prediction
        read(clinician, revised, "positive")
        read(clinician, revised, "indeterminate")
        overruled = add_result(patient, version, "normal", 0.03).latest_prediction
        read(clinician, overruled, "positive")
        read(second, overruled, "negative")


def upload(actor, patient):
    (scan,) = scan_intake.submit_scans(actor=actor, patient=patient, uploaded_files=[SimpleUploadedFile("x.png", png_bytes())])
    return scan


def hidden(page, name):
    """The value of the form's hidden input `name` ("" when it has none)."""
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page).group(0)
    value = re.search(r'value="([^"]*)"', tag)
    return value.group(1) if value else ""


def calibration_rows(page):
    """The calibration table's two rows as floats: (temperature, ECE, log-loss) before and after."""
    table = page.split("<h2>Calibration</h2>")[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*><td>[^<]*</td><td>([\d.]+)</td><td>([\d.]+)</td><td>([\d.]+)</td></tr>", table)
    return [tuple(float(x) for x in row) for row in rows]


def test_the_figures_are_shown_before_the_fit_takes_effect_then_the_sites_scans_are_recalibrated_and_decided_by_it(
    admin_web, clinician_client, clinician, add_result, patient, site_a, active_model_version
):
    version = active_model_version
    negatives = {**FOUND_NEGATIVE, 0.03: FOUND_NEGATIVE[0.03] - 1}  # the fourth 0.03 is the overruled one
    reviewed_with_findings(add_result, patient, version, clinician, FOUND_POSITIVE, negatives)
    indeterminate_and_revised_reviews(add_result, patient, version, clinician, site_a)
    before = upload(clinician, patient)
    version_probability = analyse_scan(before.pk).positive_probability  # no fit yet: the version's own
    assert before.predictions.get().threshold_source == "version"

    response = admin_web.get(fit_url(version, site_a))
    page = response.content.decode()
    assert response.status_code == 200 and not SiteThreshold.objects.exists(), "looking at the figures changes nothing"
    assert "On 20 covid and 20 other scans of St Elsewhere that clinicians read blind" in page
    assert "4 more reviewed scans left out: the finding was indeterminate" in page

    pairs = design_pairs()
    (t_before, ece_before, loss_before), (temperature, ece_after, loss_after) = calibration_rows(page)
    assert t_before == 1 and ece_before == pytest.approx(expected_calibration_error(pairs), abs=6e-4)
    assert loss_before == pytest.approx(log_loss(pairs), abs=6e-4)
    temperature = float(hidden(page, "temperature"))
    assert log_loss(pairs, temperature) < min(log_loss(pairs, temperature * 1.02), log_loss(pairs, temperature / 1.02)), "the likelihood's best T"
    assert temperature > 1, "an overconfident version is made less sure"
    recalibrated = [(with_temperature(p, temperature), y) for p, y in pairs]
    assert ece_after == pytest.approx(expected_calibration_error(recalibrated), abs=6e-4) and ece_after < ece_before
    assert loss_after == pytest.approx(log_loss(pairs, temperature), abs=6e-4) and loss_after < loss_before
    assert "re-fitted: T = " in page and "less confident" in page

    # 95% of 20 positives is 19: the lowest kept is a 0.35, the next score below any scan's is 0.15;
    # the threshold sits midway between the two, on the recalibrated scale.
    threshold = float(hidden(page, "threshold"))
    assert threshold == pytest.approx((with_temperature(0.35, temperature) + with_temperature(0.15, temperature)) / 2, abs=1e-6)
    assert page.count("(95% CI") == 4, "sensitivity and specificity with CIs at the old and the new threshold"
    assert "0.95 (95% CI" in page and "0.40 (95% CI" in page, "19 of 20 positives kept; the 8 negatives at 0.15 and 0.03 below it"

    assert admin_web.post(fit_url(version, site_a), {"threshold": threshold + 0.01, "temperature": temperature}).status_code == 400, \
        "figures not shown are refused"
    assert admin_web.post(fit_url(version, site_a), {"threshold": threshold, "temperature": temperature * 1.1}).status_code == 400
    assert admin_web.post(fit_url(version, site_a), {"threshold": hidden(page, "threshold"), "temperature": hidden(page, "temperature")}).status_code == 302
    fitted = SiteThreshold.objects.get()
    assert (fitted.version, fitted.site, fitted.threshold, fitted.temperature) == (version, site_a, threshold, temperature)
    assert fitted.figures["n_left_out"] == 4 and fitted.figures["site_threshold"]["specificity"]["k"] == 8
    audit = AuditEvent.objects.get(action=AuditEvent.Action.SITE_THRESHOLD_SET)
    assert audit.details["changes"] == {"threshold": [version.threshold, threshold], "temperature": [None, temperature]}
    assert audit.actor.username == "admin_a" and audit.details["site"] == site_a.code
    listing = admin_web.get(reverse("diagnosis:site_threshold_list", args=[version.pk])).content.decode()
    assert f"{threshold:.3f} (site)" in listing and f"{temperature:.3f}" in listing

    after = upload(clinician, patient)  # the same film, now read at a site with its own fit
    prediction = analyse_scan(after.pk)  # what the inference worker runs for the scan
    assert prediction.positive_probability == pytest.approx(with_temperature(version_probability, temperature), abs=1e-5)
    assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert prediction.probabilities[version.positive_class] == prediction.positive_probability
    assert (prediction.threshold_source, prediction.site_threshold, prediction.threshold) == ("site", fitted, threshold)
    assert prediction.is_positive == (prediction.positive_probability >= threshold)

    day = localtime(fitted.created_at)
    origin = f"threshold and calibration fitted for St Elsewhere on 40 reviewed scans ({day.day} {day:%b %Y})"
    card = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]), {"scan": after.pk}).content.decode()
    assert f"Decided by the {origin}." in card and "site threshold" in card
    report = clinician_client.get(reverse("diagnosis:scan_report", args=[after.pk])).content.decode()
    assert f"Decided by the {origin}." in report
    assert "version threshold" in clinician_client.get(reverse("diagnosis:scan_report", args=[before.pk])).content.decode()
    api = APIClient()
    api.force_authenticate(clinician)
    (answer,) = api.get(reverse("api:scan_detail", args=[after.pk])).json()["predictions"]
    assert (answer["threshold_source"], answer["threshold_origin"], answer["site_temperature"]) == ("site", origin, temperature)
    (earlier,) = api.get(reverse("api:scan_detail", args=[before.pk])).json()["predictions"]
    assert (earlier["threshold_origin"], earlier["site_temperature"]) == ("version threshold", None)


def test_a_refit_starts_from_the_versions_probabilities_not_the_site_calibrated_ones(add_result, patient, clinician, site_a, make_version):
    """A result stored after a site temperature was applied is brought back to the version's scale."""
    from diagnosis import site_thresholds

    version = make_version()
    earlier_fit = SiteThreshold.objects.create(version=version, site=site_a, threshold=0.5, temperature=2.0, figures={})
    predictions = reviewed_with_findings(add_result, patient, version, clinician, FOUND_POSITIVE, FOUND_NEGATIVE)
    for prediction in predictions[::2]:  # as if these had been read under the earlier fit
        prediction.positive_probability = with_temperature(prediction.positive_probability, 2.0)
        prediction.site_threshold = earlier_fit
        prediction.save()
    is_positive, probability, counts = site_thresholds.blind_reads(version, site_a)
    assert sorted(zip(probability.round(5), is_positive)) == sorted(design_pairs()) and counts == {"indeterminate": 0, "unblinded_only": 0}


def test_a_temperature_that_does_not_help_is_not_applied_and_the_page_says_why(admin_web, add_result, patient, clinician, site_a, make_version):
    version = make_version()
    # The version separates these perfectly: the likelihood keeps rising as T shrinks toward its bound.
    reviewed_with_findings(add_result, patient, version, clinician, {0.9: 10, 0.8: 10}, {0.3: 10, 0.1: 10})
    page = admin_web.get(fit_url(version, site_a)).content.decode()
    assert "not re-fitted, the version&#x27;s probabilities are kept: the fit ran to the edge of its range" in page
    assert hidden(page, "temperature") == "" and "Use threshold" in page
    # Every positive is kept at a threshold midway between the lowest positive (0.8) and the highest negative (0.3).
    assert float(hidden(page, "threshold")) == pytest.approx(0.55)
    assert admin_web.post(fit_url(version, site_a), {"threshold": hidden(page, "threshold"), "temperature": ""}).status_code == 302
    fitted = SiteThreshold.objects.get()
    assert fitted.temperature is None and fitted.description.startswith("threshold fitted for St Elsewhere on 40 reviewed scans")
    audit = AuditEvent.objects.get(action=AuditEvent.Action.SITE_THRESHOLD_SET)
    assert audit.details["changes"] == {"threshold": [0.5, fitted.threshold]}, "the temperature stayed as it was: none"
    assert "1 (not re-fitted)" in admin_web.get(reverse("diagnosis:site_threshold_list", args=[version.pk])).content.decode()


def test_a_version_that_ranks_a_sites_scans_backwards_gets_no_temperature(admin_web, add_result, patient, clinician, site_a, make_version):
    """The likelihood would want a negative T; the search runs to its upper bound, flattening every
    probability toward 50%, and that is refused rather than applied."""
    version = make_version()
    reviewed_with_findings(add_result, patient, version, clinician, {0.2: 20}, {0.8: 20})
    page = admin_web.get(fit_url(version, site_a)).content.decode()
    assert "the fit ran to the edge of its range (T = 20)" in page and "say next to nothing about these scans" in page
    assert hidden(page, "temperature") == ""


def test_too_few_reviewed_scans_of_a_class_are_refused_with_the_minimum_in_the_sentence(admin_web, add_result, patient, clinician, site_a, make_version):
    version = make_version()
    reviewed_with_findings(add_result, patient, version, clinician, {0.9: 19}, {0.1: 20})
    with silent_period(site_a):
        for _ in range(2):
            read(clinician, add_result(patient, version, version.positive_class, 0.9).latest_prediction, "indeterminate")
    sentence = (f"A threshold for St Elsewhere needs at least 20 scans of each class read blind, whose AI result {version.label} made; "
                "it has 19 covid and 20 other (2 more left out: their blind read&#x27;s finding is indeterminate).")
    assert sentence in admin_web.get(fit_url(version, site_a)).content.decode()
    response = admin_web.post(fit_url(version, site_a), {"threshold": "0.5", "temperature": ""})
    assert response.status_code == 400 and sentence in response.content.decode()
    assert not SiteThreshold.objects.exists() and not AuditEvent.objects.filter(action=AuditEvent.Action.SITE_THRESHOLD_SET).exists()


def test_reads_made_with_the_ai_result_visible_are_counted_apart_and_never_used(admin_web, add_result, patient, clinician, site_a, make_version):
    """The design's blind reads, and as many scans again reviewed at the live site beside the shown
    result, every one contradicting the version: the fit and its figures are the blind reads' alone."""
    version = make_version()
    reviewed_with_findings(add_result, patient, version, clinician, FOUND_POSITIVE, FOUND_NEGATIVE)
    reviewed_with_findings(add_result, patient, version, clinician, {0.05: 20}, {0.95: 20}, blind=False)
    assert Review.objects.filter(ai_result_visible=True).count() == 40 and Review.objects.filter(ai_result_visible=False).count() == 40

    page = admin_web.get(fit_url(version, site_a)).content.decode()
    assert "On 20 covid and 20 other scans of St Elsewhere that clinicians read blind" in page
    assert "40 scans read only with the AI result visible are not used" in page
    pairs = design_pairs()
    (_, ece_before, loss_before), _ = calibration_rows(page)
    assert ece_before == pytest.approx(expected_calibration_error(pairs), abs=6e-4) and loss_before == pytest.approx(log_loss(pairs), abs=6e-4)
    temperature = float(hidden(page, "temperature"))
    assert threshold_midway(page, temperature), "the threshold the blind reads alone give"
    assert admin_web.post(fit_url(version, site_a), {"threshold": hidden(page, "threshold"), "temperature": hidden(page, "temperature")}).status_code == 302
    fitted = SiteThreshold.objects.get()
    assert (fitted.figures["n_positive"], fitted.figures["n_negative"], fitted.figures["n_unblinded_only"]) == (20, 20, 40)


def threshold_midway(page, temperature):
    """Whether the page's threshold sits midway between the recalibrated 0.35 and 0.15 (design_pairs at 95% sensitivity)."""
    expected = (with_temperature(0.35, temperature) + with_temperature(0.15, temperature)) / 2
    return float(hidden(page, "threshold")) == pytest.approx(expected, abs=1e-6)


def test_reviews_made_beside_the_result_before_blind_reads_existed_are_not_used(admin_web, add_result, patient, clinician, site_a, make_version):
    """Reviews from before findings were asked (agree or disagree only) were all made with the AI result in view."""
    version = make_version()
    for i in range(24):
        add_result(patient, version, version.positive_class, 0.55 + 0.01 * i, reviewed_by=clinician)
    page = admin_web.get(fit_url(version, site_a)).content.decode()
    assert "it has 0 covid and 0 other (24 read only with the AI result visible, never used)." in page


def test_another_sites_scans_keep_the_versions_threshold(site_a, site_b, active_model_version, other_site_clinician):
    SiteThreshold.objects.create(version=active_model_version, site=site_a, threshold=0.999, temperature=3.0, figures={}, created_by=None)
    other = Patient.objects.create(site=site_b, medical_record_number="MRN-B", family_name="B", given_name="B", created_by=other_site_clinician)
    prediction = analyse_scan(upload(other_site_clinician, other).pk)
    assert (prediction.threshold_source, prediction.site_threshold, prediction.threshold) == ("version", None, active_model_version.threshold)
    assert prediction.threshold_origin == "version threshold"


def test_only_administrators_fit_thresholds(clinician_client, site_a, make_version):
    version = make_version()
    assert clinician_client.get(reverse("diagnosis:site_threshold_list", args=[version.pk])).status_code == 403
    assert clinician_client.get(fit_url(version, site_a)).status_code == 403
    assert clinician_client.post(fit_url(version, site_a), {"threshold": "0.5", "temperature": ""}).status_code == 403
    assert not SiteThreshold.objects.exists()


def test_when_the_sites_threshold_changes_the_label_the_heatmap_shown_is_the_map_of_that_label(site_a, patient, clinician, active_model_version):
    """The viewer says the heatmap shows where the model looked for the label beside it: a label
    decided by the site's threshold comes with its own class's map, not the version label's."""
    import io

    import numpy as np
    from PIL import Image

    from diagnosis import storage
    from ml import runtime

    scan = upload(clinician, patient)
    _, predictor = runtime.active_predictor()
    (version_answer,) = predictor.predict_batch([storage.load_pixels(scan.stored_name)])
    p = version_answer["positive_probability"]
    # A threshold on the other side of this scan's probability: the site's rule flips the version's label.
    flipped_threshold = (1 + p) / 2 if p >= active_model_version.threshold else p / 2
    SiteThreshold.objects.create(version=active_model_version, site=site_a, threshold=flipped_threshold, temperature=None, figures={}, created_by=None)

    prediction = analyse_scan(scan.pk)
    assert prediction.threshold_source == "site" and prediction.label != version_answer["label"]
    stored = np.asarray(Image.open(io.BytesIO(storage.read(prediction.heatmap_name))))
    own_map, version_labels_map = version_answer["heatmaps"][prediction.label], version_answer["heatmaps"][version_answer["label"]]
    assert np.abs(stored.astype(int) - own_map).max() <= 1
    assert np.abs(stored.astype(int) - version_labels_map).max() > 10, "the two classes' maps differ, so the test can tell them apart"
