"""Watching a live site: each week's share called positive, mean probability, agreement with
clinicians' findings and share indeterminate, held against three-sigma limits from the silent
period; a week outside them is an alert on the administrators' pages and in the API.

Results are placed in time the way the worklist tests place scans: made through the fixtures and
services, then their creation moved back by whole weeks."""
import math
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from diagnosis import roles, services, site_going_live
from diagnosis.models import Patient, Prediction, Site, SiteModeDecision
from tests.api import token_client
from tests.conftest import make_user, signed_in

pytestmark = pytest.mark.django_db


def results(add_result, patient, version, reader, probabilities, days_ago):
    """One result per probability, read (blind while the site is silent) as the model said, created `days_ago`."""
    for probability in probabilities:
        label = version.positive_class if probability >= 0.5 else "normal"
        prediction = add_result(patient, version, label, probability).latest_prediction
        services.review_prediction(actor=reader, prediction=prediction, finding="positive" if probability >= 0.5 else "negative",
                                   **({} if patient.site.mode == Site.Mode.SILENT else {"agrees": True}))
        Prediction.objects.filter(pk=prediction.pk).update(created_at=timezone.now() - timedelta(days=days_ago))


def drifting_site(add_result, make_version, administrator, settings):
    """A site two silent weeks at 30% called positive, live for ten days, 90% called positive this week."""
    settings.SITE_VALIDATION_MIN_PER_FINDING = 2
    site = Site.objects.create(name="Hillside Infirmary", code="hill")
    reader = make_user("dr_hill", roles.CLINICIANS, site)
    patient = Patient.objects.create(site=site, medical_record_number="H-1", family_name="Ndiaye", given_name="Awa")
    version = make_version()
    silent = [0.8] * 6 + [0.2] * 14  # two silent weeks like this: 30% called positive, mean 0.38
    results(add_result, patient, version, reader, silent, days_ago=28)
    results(add_result, patient, version, reader, silent, days_ago=21)
    site_going_live.go_live(site, version, actor=administrator, override=True, reason="drift test")
    SiteModeDecision.objects.update(decided_at=timezone.now() - timedelta(days=10))
    site.refresh_from_db()
    results(add_result, patient, version, reader, [0.9] * 18 + [0.2] * 2, days_ago=0)  # this week: 90% called positive
    return site


def test_a_live_week_outside_the_silent_periods_limits_is_an_alert(add_result, make_version, administrator, settings):
    site = drifting_site(add_result, make_version, administrator, settings)
    watch = token_client(administrator).get(reverse("api:site_drift", args=["hill"])).json()
    assert watch["silent_weeks"] == 2 and [week["live"] for week in watch["weeks"]] == [False, False, True]
    live = watch["weeks"][-1]["figures"]
    # This file's own p-chart: 0.30 +- 3 sqrt(0.3 * 0.7 / 20), a share never below 0.
    half = 3 * math.sqrt(0.3 * 0.7 / 20)
    assert live["positive_share"]["value"] == pytest.approx(0.9)
    assert live["positive_share"]["limits"] == pytest.approx([max(0.0, 0.3 - half), 0.3 + half]) and live["positive_share"]["alert"]
    assert live["mean_probability"]["alert"] and not live["agreement"]["alert"]
    assert len(watch["alerts"]) == 2 and watch["alerts"][0].startswith("Week of ") and "share of films called positive was 0.90" in watch["alerts"][0]

    admin = signed_in(administrator)
    assert "2 alerts" in admin.get(reverse("diagnosis:site_overview")).content.decode()
    assert "share of films called positive was 0.90" in admin.get(reverse("diagnosis:site_validation", args=[site.pk])).content.decode()


def test_the_alerts_of_a_live_sites_latest_week_are_a_prometheus_gauge(client, add_result, make_version, administrator, settings):
    drifting_site(add_result, make_version, administrator, settings)
    settings.METRICS_TOKEN = "drift-test-token"
    cache.delete("portal-metrics-drift")  # the gauge is cached for five minutes
    metrics = client.get("/metrics", HTTP_AUTHORIZATION="Bearer drift-test-token").content.decode()
    assert 'portal_site_drift_alerts{site="hill"} 2.0' in metrics  # the positive share and the mean probability
