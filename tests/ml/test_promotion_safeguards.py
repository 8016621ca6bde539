"""Promotion safeguards: without an evaluation on the reference set, with AUC there below 0.5 or
below the active version's beyond its CI, or missing a shortcut target, a promotion needs an
explicit override with a written reason, recorded, on the page and through the API."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from ml import services
from ml.models import ModelVersion, Promotion
from tests.ml.conftest import make_dataset
from tests.ml.test_comparison import engine_metrics

pytestmark = pytest.mark.django_db

GOOD_SHORTCUTS = {"occlusion": {"overall": {"lungs_blanked": {"value": 0.52}, "outside_lungs_blanked": {"value": 0.85}}},
                  "counterfactual": {"flip_rate": {"value": 0.02}}, "heat_outside_lungs": {"mean_share_outside": 0.1, "mean_area_outside": 0.6}}


@pytest.fixture
def reference(settings, tmp_path):
    folder = make_dataset(f"reference-{tmp_path.name}", {"covid": 3, "normal": 3})
    settings.ML_EVALUATION_SET = folder.name
    return folder.name


def measured(version, reference, auc, *, shortcuts=GOOD_SHORTCUTS, ece=0.03):
    metrics = {**engine_metrics(auc, 0.8, 0.8), "calibration": {"ece": ece, "curve": []}, "shortcuts": shortcuts}
    services.record_evaluation(version=version, dataset_path=reference, fingerprint=f"fp-{reference}", n_images=6, metrics=metrics)
    return version


def promote_page(client, version, **fields):
    return client.post(reverse("ml:version_promote", args=[version.pk]), fields)


def test_a_version_that_meets_every_safeguard_is_promoted_without_override(admin_client, make_version, reference):
    version = measured(make_version(), reference, 0.9)
    assert "The safeguards have no objection" in admin_client.get(reverse("ml:version_promote", args=[version.pk])).content.decode()
    assert promote_page(admin_client, version, reason="meets every target").status_code == 302
    promotion = Promotion.objects.get()
    assert promotion.to_version == version and not promotion.overridden and promotion.concerns == []


@pytest.mark.parametrize("case, concern", [
    ("unevaluated", "it has not been evaluated on"),
    ("auc below chance", "below 0.5 (worse than chance)"),
    ("reads the hospital", "its AUC with the lung fields blanked is 0.91, above the target of 0.60"),
    ("flips", "its counterfactual flip rate is 30%, above the target of 5%"),
    ("looks outside", "its heat outside the lungs is 70%, above the target of 25%"),
    ("miscalibrated", "its calibration error (ECE) is 0.160, above the target of 0.050"),
])
def test_a_version_failing_a_safeguard_needs_an_override_with_a_reason(admin_client, administrator, make_version, reference, case, concern):
    version = make_version()
    shortcuts = {k: dict(v) for k, v in GOOD_SHORTCUTS.items()}
    if case == "auc below chance":
        measured(version, reference, 0.44)
    elif case == "reads the hospital":
        measured(version, reference, 0.9, shortcuts={**shortcuts, "occlusion": {"overall": {"lungs_blanked": {"value": 0.91}}}})
    elif case == "flips":
        measured(version, reference, 0.9, shortcuts={**shortcuts, "counterfactual": {"flip_rate": {"value": 0.3}}})
    elif case == "looks outside":
        measured(version, reference, 0.9, shortcuts={**shortcuts, "heat_outside_lungs": {"mean_share_outside": 0.7, "mean_area_outside": 0.6}})
    elif case == "miscalibrated":
        measured(version, reference, 0.9, ece=0.16)

    confirm = admin_client.get(reverse("ml:version_promote", args=[version.pk])).content.decode()
    assert "The safeguards object to this promotion" in confirm and concern[3:] in confirm

    refused = promote_page(admin_client, version, reason="looks fine to me")
    assert refused.status_code == 400 and "cannot be promoted without an override because" in refused.content.decode()
    no_reason = promote_page(admin_client, version, override="on")
    assert no_reason.status_code == 400 and "needs a written reason" in no_reason.content.decode()
    assert not Promotion.objects.exists() and ModelVersion.objects.get(pk=version.pk).status == "candidate"

    assert promote_page(admin_client, version, override="on", reason="needed for the outage, reviewed by the board").status_code == 302
    promotion = Promotion.objects.get()
    assert promotion.overridden and promotion.actor == administrator and promotion.reason == "needed for the outage, reviewed by the board"
    assert any(concern in text for text in promotion.concerns)


def test_an_auc_below_the_active_versions_interval_needs_an_override(admin_client, make_version, reference):
    active = measured(make_version(), reference, 0.92)
    services.promote_version(active.pk, reason="first")
    worse = measured(make_version(), reference, 0.75)  # active's CI is [0.82, 0.97]
    refused = promote_page(admin_client, worse, reason="newer")
    assert refused.status_code == 400 and f"below the active {active.label}" in refused.content.decode()


def test_the_api_answers_409_until_an_override_with_a_reason(administrator, make_version, reference):
    api = APIClient()
    api.force_authenticate(administrator)
    version = measured(make_version(), reference, 0.44)
    url = reverse("api:version_promote", args=[version.pk])
    refused = api.post(url, {"reason": "please"}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "promotion_needs_override"
    assert "below 0.5" in refused.json()["error"]
    accepted = api.post(url, {"reason": "shadow trial only", "override": True}, format="json")
    assert accepted.status_code == 200 and accepted.json()["overridden"] is True
    assert "Made active by an administrator's override of the promotion safeguards." in accepted.json()["notes"]
