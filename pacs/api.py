"""`/api/v1/dicom-nodes/`: the PACS and modalities that may send films, for administrators only;
and the routes of `/api/v1/unmatched-instances/` (pacs.unmatched_api)."""
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from django.urls import path
from rest_framework import generics, serializers

from diagnosis.api.base import ApiViewMixin
from diagnosis.auditing import client_ip
from diagnosis.models import Site

from . import services, unmatched_api
from .models import DicomNode


class DicomNodeSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="code", queryset=Site.objects.all(), help_text="The code of the site whose patients the node sends.")
    sender_account = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all(), required=False, allow_null=True,
                                                  help_text="The username whose API token the node uses for STOW-RS (`POST /dicomweb/studies`).")

    class Meta:
        model = DicomNode
        fields = ["id", "ae_title", "host", "port", "dicomweb_url", "site", "may_send", "receives_results", "serves_priors", "sender_account", "created_at"]
        read_only_fields = ["created_at"]

    def validate_ae_title(self, value):
        return value.strip()


PERMISSIONS = {"GET": "pacs.view_dicomnode", "POST": "pacs.add_dicomnode", "PATCH": "pacs.change_dicomnode", "DELETE": "pacs.delete_dicomnode"}


class NodeWrites:
    """Every write goes through pacs.services, which keeps its audit row."""

    def perform_create(self, serializer):
        self._save(serializer)

    def perform_update(self, serializer):
        self._save(serializer)

    def _save(self, serializer):
        node = serializer.instance or DicomNode()
        for name, value in serializer.validated_data.items():
            setattr(node, name, value)
        serializer.instance = services.save_node(actor=self.request.user, node=node, via="api", ip_address=client_ip(self.request))


class DicomNodeList(NodeWrites, ApiViewMixin, generics.ListCreateAPIView):
    """The DICOM nodes (PACS, modalities) registered; POST registers one."""

    serializer_class = DicomNodeSerializer
    permission_required = PERMISSIONS
    queryset = DicomNode.objects.select_related("site")


class DicomNodeDetail(NodeWrites, ApiViewMixin, generics.RetrieveUpdateDestroyAPIView):
    """One DICOM node; PATCH changes it, DELETE removes it (what it sent stays, with its AE title)."""

    serializer_class = DicomNodeSerializer
    permission_required = PERMISSIONS
    queryset = DicomNode.objects.select_related("site")
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self):
        # Nodes belong to no one site: the role's permission, checked for every request, is the whole rule.
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["node_id"])

    def perform_destroy(self, node):
        services.remove_node(actor=self.request.user, node=node, via="api", ip_address=client_ip(self.request))


app_name = "pacs_api"
urlpatterns = [
    # The API authenticates with tokens inside DRF, so the site-wide login redirect must not apply.
    path("dicom-nodes/", login_not_required(DicomNodeList.as_view()), name="dicom_node_list"),
    path("dicom-nodes/<int:node_id>/", login_not_required(DicomNodeDetail.as_view()), name="dicom_node_detail"),
    path("unmatched-instances/", login_not_required(unmatched_api.UnmatchedInstanceList.as_view()), name="unmatched_instance_list"),
    path("unmatched-instances/<int:instance_id>/file/", login_not_required(unmatched_api.FileInstance.as_view()), name="unmatched_instance_file"),
    path("unmatched-instances/<int:instance_id>/register/", login_not_required(unmatched_api.RegisterAndFile.as_view()), name="unmatched_instance_register"),
    path("unmatched-instances/<int:instance_id>/dismiss/", login_not_required(unmatched_api.DismissInstance.as_view()), name="unmatched_instance_dismiss"),
]
