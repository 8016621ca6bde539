from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from ml.admin import ReadOnlyAdmin

from . import selectors
from .models import AuditEvent, Patient, Site, StaffProfile


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "code"]


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    verbose_name = "site"


admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    inlines = [StaffProfileInline]
    list_display = ["username", "first_name", "last_name", "is_active", "site"]
    list_filter = ["groups", "is_active"]

    @admin.display(description="site")
    def site(self, user):
        return selectors.site_of(user)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail is only ever appended to, by the services."""

    list_display = ["at", "actor", "action", "patient", "scan", "via", "ip_address"]
    list_filter = ["action", "via"]
    date_hierarchy = "at"


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["family_name", "given_name", "medical_record_number", "site"]
    search_fields = ["family_name", "given_name", "medical_record_number"]
    readonly_fields = [field.name for field in Patient._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
