"""A new version meets each live site's films before the site sees its results.

Re-measuring runs a version on the films a live site's clinicians read blind (each film's newest
current blind read is its truth, whichever version read it at the time) as a job on the training
queue, and keeps the site's local validation report of it (site_validation.report_on).

The rule at promotion, for each site that went live by a decision (site_going_live): the version
promoted must have been re-measured on the site's films and meet the site's targets, or be the
version the site went live with. Otherwise the promotion safeguards object (ml.trust asks
`promotion_concerns`), and if an administrator overrides them the site goes back to its silent
period at the promotion: its clinicians read blind again until an administrator reads the new
report and switches it live. One active version serves every site (workers load one model), so
keeping a site on its older version is not offered. Sites live from before local validation was
recorded have no blind reads to measure on and are left as they are.
"""
import numpy as np
from django.db import transaction
from django.utils import timezone

from jobs import lifecycle
from ml import services as ml_services

from . import services, site_going_live, site_thresholds, site_validation, storage
from .models import AuditEvent, Review, Site, SiteRemeasure


def live_sites_with_blind_reads():
    """The sites that went live by a decision made on their blind reads."""
    return Site.objects.filter(mode=Site.Mode.LIVE, mode_decision__isnull=False, mode_decision__version__isnull=False).order_by("name")


def blind_films(site):
    """[(stored file path, is positive)] over the site's films with a current blind read (the
    newest), and the counts report_on needs (indeterminate reads left out)."""
    reviews = Review.objects.filter(superseded_at__isnull=True, ai_result_visible=False, prediction__scan__patient__site=site).select_related(
        "prediction__scan", "prediction__model_version").order_by("prediction__scan_id", "-created_at", "-id")
    films, indeterminate = [], 0
    for review, says_positive in site_thresholds.newest_reads(reviews, key=lambda review: review.prediction.scan_id):
        if says_positive is None:
            indeterminate += 1
        else:
            films.append((storage.local_path(review.prediction.scan.stored_name), says_positive))
    return films, {"indeterminate": indeterminate, "unblinded_only": 0}


def start_remeasures(version, *, actor=None, via="web", ip_address=None, enqueue=True):
    """Queue one job per live site for `version`; `enqueue=False` for a caller that runs them itself."""
    with transaction.atomic():
        jobs = [SiteRemeasure.objects.create(version=version, site=site, created_by=actor if actor and actor.is_authenticated else None,
                                             enqueued_at=None if enqueue else timezone.now())
                for site in live_sites_with_blind_reads()]
        if enqueue and jobs:
            lifecycle.enqueue_on_commit(*jobs)
        services.record_audit(actor, AuditEvent.Action.SITE_REMEASURE_STARTED, via=via, ip_address=ip_address,
                              details={"version": version.label, "sites": [job.site.code for job in jobs], "jobs": [job.pk for job in jobs]})
    return jobs


def execute_remeasure(job_id):
    """Run one queued re-measure to its end in this process; the job as it ended, or None when it was not queued."""
    job = lifecycle.run_to_end(SiteRemeasure, job_id, lambda job: {"report": _measure(job.version, job.site)})
    if job is None:
        return None
    return SiteRemeasure.objects.get(pk=job.pk)


def _measure(version, site):
    films, counts = blind_films(site)
    truths, probabilities, unreadable = [], [], 0
    for (_, says_positive), result in zip(films, ml_services.predict_files(version, [path for path, _ in films])):
        if "error" in result:
            unreadable += 1
            continue
        truths.append(says_positive)
        probabilities.append(result["probabilities"][version.positive_class])
    report = site_validation.report_on(version, site, np.array(truths, dtype=bool), np.array(probabilities, dtype=np.float64), counts)
    return {**report, "n_unreadable": unreadable}


def latest_remeasure(version, site):
    return SiteRemeasure.objects.filter(version=version, site=site, status=SiteRemeasure.Status.SUCCEEDED).first()


def site_concern(version, site):
    """Why `version` may not reach this live site's clinicians (a sentence), or None."""
    if site.mode_decision.version_id == version.pk:
        return None
    measured = latest_remeasure(version, site)
    if measured is None:
        return f"it has not been re-measured on {site.name}'s blind-read films"
    if not measured.report["ready"]:
        return f"{site.name}'s blind-read films are too few to judge it ({measured.report['n_positive']} positive, {measured.report['n_negative']} negative)"
    if measured.report["missed_targets"]:
        return f"on {site.name}'s blind-read films {'; '.join(measured.report['missed_targets'])}"
    return None


def promotion_concerns(version):
    """The promotion safeguards' local part (ml.trust.promotion_concerns, through ML_SITE_CONCERNS_PROVIDER)."""
    return [f"{concern}, so {site.name} would go back to its silent period" for site in live_sites_with_blind_reads()
            if (concern := site_concern(version, site))]


def after_promotion(promotion):
    """The rule above, applied when a version is made active (diagnosis.signals)."""
    version = promotion.to_version
    for site in live_sites_with_blind_reads().select_related("mode_decision"):
        concern = site_concern(version, site)
        if concern:
            site_going_live.back_to_silent(site, actor=promotion.actor, reason=f"{version.label} was made active and {concern}.")
