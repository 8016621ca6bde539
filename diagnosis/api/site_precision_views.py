"""A version's reduced precision compared with Keras on each silent site's films (diagnosis.site_precision),
for administrators (ml.manage_models) through the API; the same service as the site's validation page."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response

from diagnosis import site_precision, site_validation
from diagnosis.auditing import client_ip
from diagnosis.models import SitePrecisionCheck
from ml.models import ModelVersion

from . import errors
from .base import ApiViewMixin

MANAGE = "ml.manage_models"


class SitePrecisionCheckSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", read_only=True)
    version = serializers.CharField(source="version.label", read_only=True)
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded (figures recorded) or failed (failure_reason says why: too few films, nothing reduced).")
    passed = serializers.BooleanField(read_only=True, allow_null=True, help_text="Within the rule: at most 0.5% of labels changed and 1% of films moved by more than 0.05. Only then is the site served in this precision.")

    class Meta:
        model = SitePrecisionCheck
        fields = ["id", "site", "version", "status", "precision", "runtime", "n_films", "n_moved", "moved_fraction", "n_flipped",
                  "largest_move", "passed", "reason", "failure_reason", "created_at", "finished_at"]


class StartChecks(serializers.Serializer):
    site = serializers.SlugField(required=False, help_text="One site's code; default: every silent site.")


class VersionSitePrecisionChecks(ApiViewMixin, generics.ListCreateAPIView):
    """A version's reduced precision compared with Keras on sites' silent-period films, newest first;
    POST starts one check per silent site (or for the site named), a job on the training queue. While
    a reduced-precision version is active, a site is served in it only once its newest check passed."""

    serializer_class = SitePrecisionCheckSerializer
    permission_required = {"GET": MANAGE, "POST": MANAGE}

    def version(self):
        return get_object_or_404(ModelVersion, pk=self.kwargs["version_id"])

    def get_queryset(self):
        return SitePrecisionCheck.objects.filter(version=self.version()).select_related("site", "version")

    @extend_schema(request=StartChecks, responses={202: SitePrecisionCheckSerializer(many=True)})
    def post(self, request, version_id):
        version = self.version()
        asked = StartChecks(data=request.data)
        asked.is_valid(raise_exception=True)
        if not site_precision.reduced_precision(version):
            return errors.refusal(f"{version.label} is served in fp32: there is no reduced precision to check on a site's films.")
        sites = None
        if asked.validated_data.get("site"):
            sites = [get_object_or_404(site_validation.sites_for_validation(), code=asked.validated_data["site"])]
        jobs = site_precision.start_checks(version, sites=sites, actor=request.user, via="api", ip_address=client_ip(request))
        return Response(SitePrecisionCheckSerializer(jobs, many=True).data, status=202)
