"""Sites in their silent period or live, their local validation reports and the decisions between
the two, for administrators (ml.manage_models) through the API; the same services as the pages
(diagnosis.site_validation, diagnosis.site_going_live)."""
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from diagnosis import site_drift, site_going_live, site_precision, site_remeasure, site_validation
from diagnosis.auditing import client_ip
from diagnosis.models import Site, SiteRemeasure
from ml import selectors as ml_selectors
from ml.models import ModelVersion

from . import errors
from .base import ApiViewMixin
from .schema import ErrorSerializer

MANAGE = "ml.manage_models"


class SiteSerializer(serializers.ModelSerializer):
    mode = serializers.CharField(read_only=True, help_text="silent (results shown to administrators only; clinicians read blind) or live.")
    validated_on = serializers.SerializerMethodField(help_text="The line live results carry, e.g. \"Validated on 64 films of this site (v3, 7 Dec 2026)\"; null without a decision to go live.")
    decided_at = serializers.DateTimeField(source="mode_decision.decided_at", read_only=True, allow_null=True, default=None)
    overridden = serializers.BooleanField(source="mode_decision.overridden", read_only=True, default=False, help_text="The decision overrode targets the figures missed.")

    class Meta:
        model = Site
        fields = ["id", "code", "name", "mode", "validated_on", "decided_at", "overridden"]

    def get_validated_on(self, site) -> str | None:
        decision = site.mode_decision
        return decision.validated_on if decision and decision.mode == Site.Mode.LIVE else None


class ModeDecisionSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Site.Mode.choices, help_text="live (judged on the version's report now) or silent.")
    version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all(), required=False, help_text="Going live: the version judged (default: the active one).")
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="", help_text="Required going back to silent and for an override.")
    override = serializers.BooleanField(default=False, help_text="Go live although the figures miss the site's targets (a reason is then required).")


def _site(code):
    return get_object_or_404(site_validation.sites_for_validation(), code=code)


class SiteList(ApiViewMixin, generics.ListAPIView):
    """Every site, silent or live, with the decision behind its mode."""

    serializer_class = SiteSerializer
    permission_required = {"GET": MANAGE}

    def get_queryset(self):
        return site_validation.sites_for_validation()


@extend_schema(parameters=[OpenApiParameter("version", OpenApiTypes.INT, description="A version id (default: the active version).")],
               responses={200: OpenApiTypes.OBJECT})
class SiteValidationReport(ApiViewMixin, APIView):
    """The local validation report of a version at a site, from its blind reads only: n per finding,
    ROC AUC with CI, sensitivity and specificity at the version's, a fitted and the in-force threshold,
    calibration before and after the site's temperature, the targets missed and what it means; and
    `precision_check`: whether the version's reduced precision serves this site (diagnosis.site_precision)."""

    permission_required = {"GET": MANAGE}

    def get(self, request, code):
        site = _site(code)
        chosen = request.query_params.get("version", "")
        if chosen and not chosen.isdigit():
            return errors.refusal("`version` must be a version id (a whole number).")
        version = get_object_or_404(ModelVersion, pk=int(chosen)) if chosen else ml_selectors.active_version_or_none()
        if version is None:
            return errors.refusal("No model version is active; name one with ?version=.")
        return Response({**site_validation.report(version, site), "precision_check": site_precision.summary(version, site)})


@extend_schema(responses={200: OpenApiTypes.OBJECT})
class SiteDrift(ApiViewMixin, APIView):
    """A site's weeks: share called positive, mean probability, agreement with clinicians' findings and
    share indeterminate, each live week with the silent period's control limits; `alerts` lists the weeks outside them."""

    permission_required = {"GET": MANAGE}

    def get(self, request, code):
        return Response(site_drift.watch(_site(code)))


class SiteMode(ApiViewMixin, APIView):
    """Switch a site live (after its report: enough blind reads, targets met or overridden with a
    reason) or back to silent (with a reason). Audited."""

    permission_required = {"GET": MANAGE, "POST": MANAGE}

    @extend_schema(request=ModeDecisionSerializer, responses={200: SiteSerializer, 400: OpenApiResponse(ErrorSerializer, description="Refused, with the sentence why.")})
    def post(self, request, code):
        site = _site(code)
        decision = ModeDecisionSerializer(data=request.data)
        decision.is_valid(raise_exception=True)
        data = decision.validated_data
        try:
            if data["mode"] == Site.Mode.LIVE:
                version = data.get("version") or ml_selectors.active_version_or_none()
                if version is None:
                    return errors.refusal("No model version is active, so there is nothing to validate or show.")
                site_going_live.go_live(site, version, actor=request.user, reason=data["reason"], override=data["override"], via="api",
                                        ip_address=client_ip(request))
            else:
                site_going_live.back_to_silent(site, actor=request.user, reason=data["reason"], via="api", ip_address=client_ip(request))
        except site_going_live.SiteModeRefused as refusal:
            return errors.refusal(str(refusal))
        return Response(SiteSerializer(_site(code)).data)


class SiteRemeasureSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", read_only=True)
    version = serializers.CharField(source="version.label", read_only=True)
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded or failed.")
    report = serializers.JSONField(read_only=True, help_text="Once succeeded: the site's local validation report of this version (as /sites/<code>/validation/).")

    class Meta:
        model = SiteRemeasure
        fields = ["id", "site", "version", "status", "report", "failure_reason", "created_at", "finished_at"]


class VersionSiteRemeasures(ApiViewMixin, generics.ListCreateAPIView):
    """A version's re-measures on each live site's blind-read films, newest first; POST starts one per
    live site (a job on the training queue). Promoting a version that was not re-measured, or that
    misses a site's targets, needs an override, and that site then goes back to its silent period."""

    serializer_class = SiteRemeasureSerializer
    permission_required = {"GET": MANAGE, "POST": MANAGE}

    def version(self):
        return get_object_or_404(ModelVersion, pk=self.kwargs["version_id"])

    def get_queryset(self):
        return SiteRemeasure.objects.filter(version=self.version()).select_related("site", "version")

    @extend_schema(request=None, responses={202: SiteRemeasureSerializer(many=True)})
    def post(self, request, version_id):
        jobs = site_remeasure.start_remeasures(self.version(), actor=request.user, via="api", ip_address=client_ip(request))
        return Response(SiteRemeasureSerializer(jobs, many=True).data, status=202)
