from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from ml.admin import ReadOnlyAdmin

from . import selectors
from .roles import grantable_groups
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
    """Users for Administrators who are not superusers: they manage accounts within their own role.

    They never see is_superuser or per-user permissions (a hidden field is not submitted, so it
    cannot change), may give only groups whose permissions they hold themselves, may not change
    their own groups or staff status, and may not change or delete a superuser at all."""

    inlines = [StaffProfileInline]
    list_display = ["username", "first_name", "last_name", "is_active", "site"]
    list_filter = ["groups", "is_active"]
    SUPERUSER_ONLY_FIELDS = ("is_superuser", "user_permissions")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [(name, {**options, "fields": [field for field in options["fields"] if field not in self.SUPERUSER_ONLY_FIELDS]}) for name, options in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser and obj is not None and obj.pk == request.user.pk:
            readonly += ["groups", "is_staff"]
        return readonly

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = grantable_groups(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="site")
    def site(self, user):
        return selectors.site_of(user)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail is only ever appended to, by the services."""

    list_display = ["at", "actor", "action", "patient", "scan", "subject_user", "detail", "via", "ip_address"]
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
