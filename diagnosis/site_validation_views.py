"""Administrator pages of the silent period: every site's mode, and one site's local validation
report with the decision to go live (or back to silent) beside it. Thin: the figures come from
diagnosis.site_validation, the decisions from diagnosis.site_going_live."""
from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ml import selectors as ml_selectors
from ml.models import ModelVersion

from . import site_drift, site_going_live, site_precision, site_remeasure, site_validation
from .auditing import client_ip
from .models import Site, SiteRemeasure
from .site_threshold_views import administrators_only


class ModeDecisionForm(forms.Form):
    reason = forms.CharField(required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))
    override = forms.BooleanField(required=False, label="Go live although the figures miss the site's targets")
    version = forms.ModelChoiceField(queryset=ModelVersion.objects.all(), required=False, widget=forms.HiddenInput)


def _version_for(request):
    """The version whose report is asked for (?version=), else the active one; None when there is none."""
    chosen = request.GET.get("version") or request.POST.get("version")
    if chosen and chosen.isdigit():
        return get_object_or_404(ModelVersion, pk=int(chosen))
    return ml_selectors.active_version_or_none()


@administrators_only
def site_overview(request):
    sites = list(site_validation.sites_for_validation())
    served = site_precision.served_in(ml_selectors.active_version_or_none(), sites)
    sites = [(site, site_drift.watch(site)["alerts"], served.get(site.pk)) for site in sites]
    context = {"sites": sites, "versions": ModelVersion.objects.order_by("-id")[:50],
               "remeasures": SiteRemeasure.objects.select_related("site", "version")[:20]}
    return render(request, "diagnosis/site_overview.html", context)


@require_POST
@administrators_only
def site_remeasure_start(request):
    """Run a version on every live site's blind-read films before it may be promoted without an override."""
    version = get_object_or_404(ModelVersion, pk=request.POST.get("version") or 0) if (request.POST.get("version") or "").isdigit() else None
    if version is None:
        messages.error(request, "Choose the version to re-measure.")
        return redirect("diagnosis:site_overview")
    jobs = site_remeasure.start_remeasures(version, actor=request.user, ip_address=client_ip(request))
    messages.success(request, f"{version.label} is being re-measured on {len(jobs)} live site{'s' if len(jobs) != 1 else ''}' blind-read films." if jobs
                     else "No site is live by a decision on its blind reads, so there is nothing to re-measure on.")
    return redirect("diagnosis:site_overview")


@administrators_only
def site_validation_report(request, site_id):
    """GET: the report and the decision form; POST: the decision."""
    site = get_object_or_404(Site.objects.select_related("mode_decision__version"), pk=site_id)
    version = _version_for(request)
    form = ModeDecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if site.mode == Site.Mode.SILENT:
                if version is None:
                    raise site_going_live.SiteModeRefused("No model version is active, so there is nothing to validate or show.")
                site_going_live.go_live(site, version, actor=request.user, reason=data["reason"], override=data["override"], ip_address=client_ip(request))
                messages.success(request, f"{site.name} is live: its clinicians now see {version.label}'s results.")
            else:
                site_going_live.back_to_silent(site, actor=request.user, reason=data["reason"], ip_address=client_ip(request))
                messages.success(request, f"{site.name} is back in its silent period: its clinicians read blind again.")
            return redirect("diagnosis:site_validation", site_id=site.pk)
        except site_going_live.SiteModeRefused as refusal:
            form.add_error(None, str(refusal))
    context = {
        "site": site, "version": version, "form": form,
        "report": site_validation.report(version, site) if version else None,
        "decisions": site.mode_decisions.select_related("version", "decided_by")[:20],
        "remeasures": site.remeasures.filter(status=SiteRemeasure.Status.SUCCEEDED).select_related("version")[:10],
        "drift": site_drift.watch(site),
        "precision": site_precision.summary(version, site) if version else None,
        "precision_checks": site.precision_checks.filter(version=version).select_related("version")[:10] if version else [],
    }
    return render(request, "diagnosis/site_validation.html", context, status=400 if form.errors else 200)


@require_POST
@administrators_only
def site_precision_check_start(request, site_id):
    """Compare the version's reduced precision with Keras on this site's silent-period films."""
    site = get_object_or_404(Site, pk=site_id)
    version = _version_for(request)
    if version is None or not site_precision.reduced_precision(version):
        messages.error(request, "This version is served in fp32: there is no reduced precision to check on the site's films.")
    else:
        site_precision.start_checks(version, sites=[site], actor=request.user, ip_address=client_ip(request))
        messages.success(request, f"{version.label}'s {site_precision.reduced_precision(version)} is being compared with Keras on {site.name}'s films.")
    return redirect(f"{reverse('diagnosis:site_validation', args=[site.pk])}?version={version.pk}" if version else reverse("diagnosis:site_validation", args=[site.pk]))
