"""Administrator pages for local validation: the sites and their thresholds per version, and the
fit of one, shown with its figures before a confirmation records it."""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render

from ml.views import version_or_404

from . import site_thresholds
from .auditing import client_ip
from .models import Site

administrators_only = permission_required("ml.manage_models", raise_exception=True)


class ConfirmForm(forms.Form):
    """What the administrator was shown; the fit is recorded only if it is still what propose() gives."""

    threshold = forms.FloatField(widget=forms.HiddenInput)
    temperature = forms.FloatField(widget=forms.HiddenInput, required=False)  # empty: calibration not re-fitted


@administrators_only
def site_threshold_list(request, version_id):
    version = version_or_404(version_id)
    rows = [(site, site_thresholds.current(version, site)) for site in Site.objects.order_by("name")]
    return render(request, "diagnosis/site_thresholds.html", {"version": version, "rows": rows})


@administrators_only
def site_threshold_fit(request, version_id, site_id):
    """GET shows the proposal and its figures; POST (the confirmation) records it."""
    version = version_or_404(version_id)
    site = get_object_or_404(Site, pk=site_id)
    form = ConfirmForm(request.POST if request.method == "POST" else None)
    try:
        if request.method == "POST" and form.is_valid():
            fitted = site_thresholds.confirm(version, site, shown_threshold=form.cleaned_data["threshold"],
                                             shown_temperature=form.cleaned_data["temperature"], actor=request.user, ip_address=client_ip(request))
            what = "threshold and calibration" if fitted.temperature is not None else "threshold"
            messages.success(request, f"{site.name} now uses its own {what} for {version.label}; every new result says so.")
            return redirect("diagnosis:site_threshold_list", version_id=version.pk)
        proposal = site_thresholds.propose(version, site)
    except site_thresholds.SiteThresholdRefused as refusal:
        context = {"version": version, "site": site, "refusal": str(refusal), "in_force": site_thresholds.current(version, site)}
        return render(request, "diagnosis/site_threshold_fit.html", context, status=400 if request.method == "POST" else 200)
    context = {"version": version, "site": site, "proposal": proposal, "form": ConfirmForm(initial={"threshold": proposal.threshold, "temperature": proposal.temperature}),
               "in_force": site_thresholds.current(version, site)}
    return render(request, "diagnosis/site_threshold_fit.html", context, status=400 if form.errors else 200)
