from django.contrib import admin

from diagnosis.auditing import client_ip
from ml.admin import ReadOnlyAdmin

from . import services
from .models import DicomNode, ReceivedInstance, ResultSend


@admin.register(DicomNode)
class DicomNodeAdmin(admin.ModelAdmin):
    list_display = ["ae_title", "host", "port", "site", "may_send", "receives_results"]
    list_filter = ["site", "may_send"]

    def save_model(self, request, obj, form, change):
        services.save_node(actor=request.user, node=obj, via="admin", ip_address=client_ip(request))

    def delete_model(self, request, obj):
        services.remove_node(actor=request.user, node=obj, via="admin", ip_address=client_ip(request))

    def delete_queryset(self, request, queryset):
        for node in queryset:
            self.delete_model(request, node)


@admin.register(ReceivedInstance)
class ReceivedInstanceAdmin(ReadOnlyAdmin):
    """What each node sent and what became of it; the unmatched ones wait here to be filed."""

    list_display = ["received_at", "ae_title", "outcome", "header_patient_id", "reason"]
    list_filter = ["outcome", "ae_title"]


@admin.register(ResultSend)
class ResultSendAdmin(ReadOnlyAdmin):
    """Each result sent back (or waiting, or failed) to the node its film came from."""

    list_display = ["created_at", "ae_title", "status", "tries", "next_try_at", "finished_at", "status_sentence"]
    list_filter = ["status", "ae_title"]
