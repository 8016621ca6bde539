"""A new version meets a live site's films before the site sees it: a re-measure job runs the
candidate on the films the site's clinicians read blind, promotion safeguards name a live site it
was not measured on or whose targets it misses, and a promotion that overrides them sends that
site back to its silent period (the rule in diagnosis.site_remeasure)."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import roles, scan_intake, services, site_validation
from diagnosis.inference import analyse_scan
from diagnosis.models import AuditEvent, Patient, Prediction, Site, SiteRemeasure
from diagnosis.site_remeasure import execute_remeasure
from ml import services as ml_services
from ml import trust
from tests.api import token_client
from tests.conftest import make_user, signed_in
from tests.images import png_bytes

pytestmark = pytest.mark.django_db



@pytest.fixture
def live_site(settings, active_model_version, administrator):
    """A site whose 4 + 4 films were read by the model and then blind by its clinician, switched
    live on them (with an override: a tiny model and so few films cannot meet any target)."""
    settings.SITE_VALIDATION_MIN_PER_FINDING = 4
    site = Site.objects.create(name="Hillside Infirmary", code="hill")
    reader = make_user("dr_hill", roles.CLINICIANS, site)
    patient = Patient.objects.create(site=site, medical_record_number="H-1", family_name="Ndiaye", given_name="Awa")
    files = [SimpleUploadedFile(f"{i}.png", png_bytes(seed=60 + i)) for i in range(8)]
    scans = scan_intake.submit_scans(actor=reader, patient=patient, uploaded_files=files)
    for scan in scans:
        analyse_scan(scan.pk)
    for i, scan in enumerate(scans):
        services.review_prediction(actor=reader, prediction=Prediction.objects.get(scan=scan), finding="positive" if i % 2 else "negative")
    answer = token_client(administrator).post(reverse("api:site_mode", args=["hill"]), {"mode": "live", "override": True, "reason": "pilot on 8 films"}, format="json")
    assert answer.status_code == 200, answer.content
    site.refresh_from_db()
    site.reader, site.patient = reader, patient
    return site


@pytest.fixture
def candidate(tiny_model_artifact):
    """A second version from the same artifact: its answers on the films are the active version's."""
    return ml_services.register_version(artifact_path=tiny_model_artifact.artifact_path, record=tiny_model_artifact.record)


def test_a_version_not_re_measured_on_a_live_site_needs_an_override_and_the_site_goes_silent(live_site, candidate, administrator):
    with pytest.raises(ml_services.PromotionNeedsOverride) as refused:
        ml_services.promote_version(candidate.pk, actor=administrator, reason="")
    assert any("not been re-measured on Hillside Infirmary's blind-read films" in concern for concern in refused.value.concerns)
    assert Site.objects.get(pk=live_site.pk).mode == Site.Mode.LIVE

    ml_services.promote_version(candidate.pk, actor=administrator, reason="urgent fix", override=True)
    assert Site.objects.get(pk=live_site.pk).mode == Site.Mode.SILENT
    row = AuditEvent.objects.filter(action=AuditEvent.Action.SITE_MODE_CHANGED).latest("id")
    assert row.details["changes"] == {"mode": ["live", "silent"]} and candidate.label in row.details["reason"]
    # The site's next film is read by the new version, and its clinician does not see the result.
    (scan,) = scan_intake.submit_scans(actor=live_site.reader, patient=live_site.patient, uploaded_files=[SimpleUploadedFile("n.png", png_bytes(seed=90))])
    analyse_scan(scan.pk)
    answer = token_client(live_site.reader).get(reverse("api:scan_detail", args=[scan.pk])).json()
    assert answer["ai_result"] == "withheld" and answer["predictions"] == []


@pytest.mark.parametrize("targets_met", [True, False])
def test_a_re_measure_reads_the_sites_blind_read_films_and_decides_whether_the_site_stays_live(
    live_site, candidate, administrator, active_model_version, settings, targets_met
):
    if targets_met:
        settings.SITE_LIVE_MIN_AUC_LOWER_BOUND, settings.SITE_LIVE_MIN_SPECIFICITY = 0.0, 0.0
    else:
        settings.SITE_LIVE_MIN_SPECIFICITY = 1.01  # a target no version can meet
    started = token_client(administrator).post(reverse("api:version_site_remeasures", args=[candidate.pk]))
    assert started.status_code == 202 and [job["site"] for job in started.json()] == ["hill"]
    job = execute_remeasure(started.json()[0]["id"])  # what the training worker runs for the job
    assert job.status == SiteRemeasure.Status.SUCCEEDED
    # Same artifact as the active version: read afresh from the films, it ranks them as the stored results do.
    stored = site_validation.report(active_model_version, live_site)
    assert (job.report["n_positive"], job.report["n_negative"]) == (4, 4)
    assert job.report["figures"]["roc_auc"]["value"] == pytest.approx(stored["figures"]["roc_auc"]["value"], abs=1e-6)
    listed = token_client(administrator).get(reverse("api:version_site_remeasures", args=[candidate.pk])).json()["results"]
    assert listed[0]["status"] == "succeeded" and listed[0]["report"]["version"] == candidate.label

    concerns = [concern for concern in trust.promotion_concerns(candidate, active_model_version) if "Hillside" in concern]
    if targets_met:
        assert concerns == []
    else:
        assert len(concerns) == 1 and "specificity at the threshold in force" in concerns[0] and "would go back to its silent period" in concerns[0]
    ml_services.promote_version(candidate.pk, actor=administrator, reason="re-measured", override=True)
    assert Site.objects.get(pk=live_site.pk).mode == (Site.Mode.LIVE if targets_met else Site.Mode.SILENT)
    assert candidate.label in signed_in(administrator).get(reverse("diagnosis:site_validation", args=[live_site.pk])).content.decode()
