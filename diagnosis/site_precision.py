"""A reduced precision meets a site's own films before it serves that site (issue 26).

A bf16 or int8 serving model passes its check on the version's validation films and on films unlike
them (ml.engine.serve.shifted); a new hospital's films may still differ in ways none of those
covers. So in a site's silent period the served variant is also compared with the Keras fp32
reference on the films the model read there (up to SITE_PRECISION_MAX_FILMS, the newest), by the
same rule as shifted.judge_part: at most 0.5% of labels changed at the version's stored threshold,
and at most 1% of films moved by more than 0.05 in probability. One job per site and version, on
the training queue; its record keeps n films, the share moved, labels flipped, the largest move and
whether it passed.

The serving rule (diagnosis.inference): while a reduced-precision variant is active, a site's scans
get it only when the site's newest finished check of this version at this precision passed; every
other site (failed, not checked yet, or too few silent films to check) is served in fp32 (the same
model's fp32 export, or Keras). Fp32 until passed: a site never gets a precision that was not
compared with Keras on its own films. Promoting a reduced-precision version starts the checks of
every silent site; an administrator starts them for a candidate, or for one site, from the site's
validation page or the API. No labels are needed: the check compares two models' answers, so it
runs on every film of the silent period, read blind or not.
"""
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import lifecycle
from ml import runtime
from ml.engine import ImageDecodeError
from ml.models import ServingExport

from . import storage
from .audit_trail import record_audit
from .models import AuditEvent, Prediction, Scan, Site, SitePrecisionCheck


class NothingToCheck(Exception):
    """The job's refusal: the sentence why there is nothing to compare on this site."""


def reduced_precision(version):
    """The precision of the version's accepted serving export when it is reduced (bf16 or int8), else None."""
    serving = ServingExport.objects.filter(version=version).first()
    return serving.precision if serving and serving.accepted and serving.precision != "fp32" else None


def silent_periods(site):
    """Q on Prediction.created_at: the spans in which the site was silent. A site starts silent (its
    first decision is to go live); a site whose first decision sent it back to silent was live before
    silent periods were recorded, as is a live site without any decision."""
    always, never = Q(created_at__isnull=False), Q(pk__in=[])  # (an empty Q() vanishes when OR-ed)
    decisions = list(site.mode_decisions.order_by("decided_at", "id").values_list("decided_at", "mode"))
    if not decisions:
        return always if site.mode == Site.Mode.SILENT else never
    spans, silent, since = never, decisions[0][1] == Site.Mode.LIVE, None
    for decided_at, mode in decisions:
        if mode == Site.Mode.LIVE and silent:
            spans |= Q(created_at__lt=decided_at, created_at__gte=since) if since else Q(created_at__lt=decided_at)
            silent = False
        elif mode == Site.Mode.SILENT and not silent:
            silent, since = True, decided_at
    if silent:
        spans |= Q(created_at__gte=since) if since else always
    return spans


def silent_period_scans(site, limit=None):
    """The site's analysed scans whose film the model read while the site was silent, newest first."""
    read_then = Prediction.objects.filter(silent_periods(site), scan__patient__site=site).values("scan_id")
    return list(Scan.objects.filter(pk__in=read_then, status=Scan.Status.DONE).order_by("-uploaded_at")[:limit or settings.SITE_PRECISION_MAX_FILMS])


def start_checks(version, *, sites=None, actor=None, via="web", ip_address=None, enqueue=True):
    """Queue one check per site (default: every silent site) of `version`; audited."""
    sites = list(sites if sites is not None else Site.objects.filter(mode=Site.Mode.SILENT).order_by("name"))
    with transaction.atomic():
        jobs = [SitePrecisionCheck.objects.create(version=version, site=site, created_by=actor if actor and actor.is_authenticated else None,
                                                  enqueued_at=None if enqueue else timezone.now()) for site in sites]
        if enqueue and jobs:
            lifecycle.enqueue_on_commit(*jobs)
        record_audit(actor, AuditEvent.Action.SITE_PRECISION_CHECK_STARTED, via=via, ip_address=ip_address,
                              details={"version": version.label, "sites": [job.site.code for job in jobs], "jobs": [job.pk for job in jobs]})
    return jobs


def execute_check(job_id):
    """Run one queued check to its end in this process; the job as it ended, or None when it was not queued."""
    job = lifecycle.run_to_end(SitePrecisionCheck, job_id, _check, refusals=(NothingToCheck,))
    return None if job is None else SitePrecisionCheck.objects.get(pk=job.pk)


def _check(job):
    from ml.engine import ServingPredictor
    from ml.engine.serve.shifted import judge_parts

    version, site = job.version, job.site
    images = []
    for scan in silent_period_scans(site):
        try:
            images.append(storage.load_pixels(scan.stored_name))
        except (ImageDecodeError, FileNotFoundError):
            continue  # a film gone or unreadable is left out; the count says how many were compared
    if len(images) < settings.SITE_PRECISION_MIN_FILMS:
        raise NothingToCheck(f"{site.name} has {len(images)} readable films from its silent period; the check needs at least "
                             f"{settings.SITE_PRECISION_MIN_FILMS}, so its scans stay in fp32.")
    served = runtime.load_predictor(version, ServingExport.objects.filter(version=version).first())  # as the worker loads it
    if served.precision == "fp32":
        raise NothingToCheck(f"{version.label} is served in fp32 on this host ({served.runtime}): there is no reduced precision to check.")
    reference = ServingPredictor.keras(runtime.artifact_path(version), expected_sha256=version.sha256)
    part = f"{site.name}'s films"
    positive = reference.class_names.index(reference.positive_class)
    check = judge_parts(reference, served, {part: (images, None)}, reference.spec, positive, reference.threshold, served.precision)["parts"][part]
    return {"precision": served.precision, "runtime": served.runtime, "n_films": check["n_films"], "n_moved": check["n_moved"],
            "moved_fraction": check["moved_fraction"], "n_flipped": round(check["flip_fraction"] * check["n_films"]),
            "largest_move": check["largest_move"], "passed": check["passed"], "reason": check["reason"]}


def latest_checks(version, sites):
    """{site id: the newest finished check of `version` on that site}."""
    newest = {}
    for check in SitePrecisionCheck.objects.filter(version=version, site__in=sites, status=SitePrecisionCheck.Status.SUCCEEDED).order_by("-finished_at", "-id"):
        newest.setdefault(check.site_id, check)
    return newest


def passed_sites(version, precision, site_ids):
    """The sites among `site_ids` whose newest check of `version` at `precision` passed: only they get that precision."""
    checks = latest_checks(version, site_ids)
    return {site_id for site_id, check in checks.items() if check.passed and check.precision == precision}


def predictors_for(version, predictor, scans, films):
    """[(predictor, scans, films)]: a batch split by the precision each scan's site may be served in
    (the rule above). The fp32 predictor is loaded, beside the reduced one, only once some site needs
    it; both take the same prepared films (same preprocessing)."""
    if predictor.precision == "fp32" or not scans:
        return [(predictor, scans, films)]
    passed = passed_sites(version, predictor.precision, {scan.patient.site_id for scan in scans})
    groups = []
    for wanted, chosen in ((True, predictor), (False, None)):
        picked = [i for i, scan in enumerate(scans) if (scan.patient.site_id in passed) == wanted]
        if picked:
            groups.append((chosen or runtime.fp32_predictor(version), [scans[i] for i in picked], [films[i] for i in picked]))
    return groups


def served_in(version, sites):
    """{site id: the precision the version's scans of that site get}; {} without a reduced-precision version."""
    reduced = reduced_precision(version) if version else None
    if not reduced:
        return {}
    passed = passed_sites(version, reduced, [site.pk for site in sites])
    return {site.pk: reduced if site.pk in passed else "fp32" for site in sites}


FIGURES = ("precision", "runtime", "n_films", "n_moved", "moved_fraction", "n_flipped", "largest_move", "passed", "reason")


def summary(version, site):
    """Plain data for the site's validation page and the API: which precision the version's scans of
    this site get, and the newest check's figures (or the newest job's state when none finished)."""
    reduced = reduced_precision(version)
    check = latest_checks(version, [site]).get(site.pk)
    newest = SitePrecisionCheck.objects.filter(version=version, site=site).first()
    served = reduced if check and check.passed and check.precision == reduced else "fp32"  # passed_sites' rule, on the check in hand
    figures = {name: getattr(check, name) for name in FIGURES} | {"checked_at": check.finished_at} if check else None
    if not reduced:
        sentence = f"{version.label} is served in fp32: there is no reduced precision to check on {site.name}'s films."
    elif check is None:
        sentence = f"{version.label}'s {reduced} has not been compared with Keras on {site.name}'s films yet, so {site.name}'s scans are served in fp32."
    elif served == reduced:
        sentence = (f"Against Keras on {check.n_films} of {site.name}'s films, {version.label}'s {reduced} changed {check.n_flipped} labels and moved "
                    f"{check.n_moved} films by more than 0.05 (largest {check.largest_move:.3f}): within the rule, so {site.name}'s scans are served in {reduced}.")
    else:
        sentence = f"On {site.name}'s films {check.reason}, so {site.name}'s scans are served in fp32."
    return {"version": version.label, "reduced_precision": reduced, "served_in": served, "check": figures, "sentence": sentence,
            "newest_job": {"id": newest.pk, "status": newest.status, "failure_reason": newest.failure_reason} if newest else None}


def after_promotion(promotion):
    """A reduced-precision version made active is checked on every silent site's films (diagnosis.signals)."""
    if reduced_precision(promotion.to_version):
        start_checks(promotion.to_version, actor=promotion.actor, via="web")
