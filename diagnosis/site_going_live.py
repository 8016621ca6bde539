"""Going live is a decision an administrator records, after reading the site's local validation
report (site_validation); going back to silent is one too. Each writes a SiteModeDecision (the
report it was made on, the targets it missed, the reason) and one audit row, in one transaction.

A site goes live only on a report with enough blind reads of each finding; figures below the
site's targets need an override with a written reason, which every later reader of the decision
sees. Back to silent needs a reason and nothing else: hiding results is always allowed."""
from django.db import transaction

from . import services, site_validation
from .models import AuditEvent, Site, SiteModeDecision


class SiteModeRefused(Exception):
    """A switch we refuse; the message says why in one sentence."""


def _decide(site, *, mode, actor, reason, version=None, report=None, missed=(), via="web", ip_address=None):
    with transaction.atomic():
        site = Site.objects.select_for_update().get(pk=site.pk)
        was = site.mode
        decision = SiteModeDecision.objects.create(site=site, mode=mode, version=version, report=report or {}, missed_targets=list(missed),
                                                   reason=reason, decided_by=actor)
        site.mode, site.mode_decision = mode, decision
        site.save(update_fields=["mode", "mode_decision"])
        details = {
            "site": site.code, "changes": {"mode": [was, mode]}, "decision": decision.pk, "reason": reason,
            "version": version.label if version else None, "blind_reads": decision.films, "overridden": bool(missed), "missed_targets": list(missed),
        }
        services.record_audit(actor, AuditEvent.Action.SITE_MODE_CHANGED, via=via, ip_address=ip_address, details=details)
    return decision


def go_live(site, version, *, actor, reason="", override=False, via="web", ip_address=None):
    """Show the site's clinicians the results of `version`, judged on the site's blind reads now."""
    reason = (reason or "").strip()
    if site.mode == Site.Mode.LIVE:
        raise SiteModeRefused(f"{site.name} is already live.")
    report = site_validation.report(version, site)
    if not report["ready"]:
        raise SiteModeRefused(report["meaning"])
    missed = report["missed_targets"]
    if missed and not override:
        raise SiteModeRefused(f"{site.name} stays silent: {'; '.join(missed)}. Going live anyway needs an override with a written reason.")
    if missed and not reason:
        raise SiteModeRefused("An override of the site's targets needs a written reason; it is kept with the decision and in the audit trail.")
    return _decide(site, mode=Site.Mode.LIVE, actor=actor, reason=reason, version=version, report=report, missed=missed, via=via, ip_address=ip_address)


def back_to_silent(site, *, actor, reason, via="web", ip_address=None):
    """Hide the site's results from its clinicians again; they read blind from now on."""
    reason = (reason or "").strip()
    if site.mode == Site.Mode.SILENT:
        raise SiteModeRefused(f"{site.name} is already in its silent period.")
    if not reason:
        raise SiteModeRefused("Write why the site goes back to its silent period; the reason is kept in the audit trail.")
    return _decide(site, mode=Site.Mode.SILENT, actor=actor, reason=reason, via=via, ip_address=ip_address)
