"""The DICOM nodes page for administrators: list, register, change and remove the PACS and
modalities, under the rules of `/api/v1/dicom-nodes/` (the same permissions, every write through
pacs.services with its audit row)."""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from diagnosis.auditing import client_ip

from . import services
from .models import DicomNode


class DicomNodeForm(forms.ModelForm):
    dicomweb_url = forms.URLField(required=False, assume_scheme="https", label="DICOMweb base URL")
    sender_account = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"), required=False,
                                            to_field_name="username", label="STOW-RS sender account",
                                            help_text=DicomNode._meta.get_field("sender_account").help_text)

    class Meta:
        model = DicomNode
        fields = ["ae_title", "host", "port", "dicomweb_url", "site", "may_send", "receives_results", "serves_priors", "sender_account"]
        labels = {"may_send": "May send films", "receives_results": "Results go back to it", "serves_priors": "Earlier films are fetched from it"}
        help_texts = {"receives_results": "The Secondary Capture and the structured report of each result are sent to it."}


@permission_required("pacs.view_dicomnode", raise_exception=True)
def node_list(request):
    nodes = DicomNode.objects.select_related("site", "sender_account")
    return render(request, "pacs/node_list.html", {"nodes": nodes})


def node_edit(request, node_id=None):
    """Register a node (no id) or change one."""
    node = get_object_or_404(DicomNode, pk=node_id) if node_id else DicomNode()
    if not request.user.has_perm("pacs.change_dicomnode" if node_id else "pacs.add_dicomnode"):
        raise PermissionDenied
    form = DicomNodeForm(request.POST or None, instance=node)
    if request.method == "POST" and form.is_valid():
        node = services.save_node(actor=request.user, node=form.save(commit=False), via="web", ip_address=client_ip(request))
        messages.success(request, f"{node.ae_title} {'changed' if node_id else 'registered'}.")
        return redirect("pacs:node_list")
    return render(request, "pacs/node_form.html", {"form": form, "node": node if node_id else None}, status=400 if form.errors else 200)


@require_POST
@permission_required("pacs.delete_dicomnode", raise_exception=True)
def node_delete(request, node_id):
    node = get_object_or_404(DicomNode, pk=node_id)
    services.remove_node(actor=request.user, node=node, via="web", ip_address=client_ip(request))
    messages.success(request, f"{node.ae_title} removed; what it sent stays, with its AE title.")
    return redirect("pacs:node_list")
