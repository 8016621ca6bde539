from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from knox.models import AuthToken

from ml.admin import ReadOnlyAdmin

from . import account_rule, selectors, usernames
from .auditing import audit, ids
from .models import AuditEvent, Patient, Site, StaffProfile
from .roles import grantable_groups

# API tokens are listed and revoked by their owners on the tokens page, and all of an account's
# end when it is deactivated or its password changes: each of those writes its audit row. Knox's
# own admin page would delete tokens without one, so it is not offered.
if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)
from .services import changes_between


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "mode"]
    # Silent or live is a recorded decision (Sites pages, diagnosis.site_going_live), never a field edited here.
    fields = ["name", "code", "mode"]
    readonly_fields = ["mode"]


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    verbose_name = "site"


admin.site.unregister(User)


class DistinctUsername:
    """The admin's user forms refuse a username that passes for another (diagnosis.usernames)."""

    def clean_username(self):
        # Django's creation form already refuses a name taken in another case (its answer is then None).
        username = super().clean_username() if hasattr(super(), "clean_username") else self.cleaned_data["username"]
        refused = username and usernames.refusal(username, exclude_pk=self.instance.pk)
        if refused:
            raise ValidationError(refused)
        return username


class StaffUserCreationForm(DistinctUsername, AdminUserCreationForm):
    pass


class StaffUserChangeForm(DistinctUsername, UserChangeForm):
    pass


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Users for Administrators who are not superusers: they manage accounts within their own role.

    They never see is_superuser or per-user permissions (a hidden field is not submitted, so it
    cannot change), may give only groups whose permissions they hold themselves, may not change
    their own groups or staff status, and may not change, delete or unlock another account holding a
    permission they lack, nor a superuser's at all (account_rule)."""

    inlines = [StaffProfileInline]
    add_form, form = StaffUserCreationForm, StaffUserChangeForm
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

    def _may_act_on(self, request, obj):
        # One's own name, email and password stay editable here (groups and staff status do not);
        # another account only by account_rule, which also guards the password change page.
        return obj is None or obj.pk == request.user.pk or account_rule.refusal(request.user, obj) is None

    def has_change_permission(self, request, obj=None):
        return self._may_act_on(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_act_on(request, obj) and super().has_delete_permission(request, obj)

    @admin.display(description="site")
    def site(self, user):
        return selectors.site_of(user)

    # The trail: a user made or changed (field: old -> new), a role given or taken, a password set.
    AUDITED_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser")

    def save_model(self, request, obj, form, change):
        before = User.objects.filter(pk=obj.pk).values(*self.AUDITED_FIELDS).first() if change else {}
        super().save_model(request, obj, form, change)
        after = {name: getattr(obj, name) for name in self.AUDITED_FIELDS}
        action = AuditEvent.Action.USER_CHANGED if change else AuditEvent.Action.USER_CREATED
        changes = changes_between(before or {}, after)
        if changes or not change:
            audit(request, action, via="admin", details={"user": obj.username, "changes": changes})

    def save_related(self, request, form, formsets, change):
        before = sorted(form.instance.groups.values_list("name", flat=True))
        super().save_related(request, form, formsets, change)
        after = sorted(form.instance.groups.values_list("name", flat=True))
        if before != after:
            audit(request, AuditEvent.Action.ROLE_CHANGED, via="admin", details={"user": form.instance.username, "changes": {"groups": [before, after]}})

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            # Saving the new password also revoked the user's API tokens (diagnosis.api.auth).
            user = User.objects.get(pk=id)
            audit(request, AuditEvent.Action.PASSWORD_CHANGED, via="admin", details={"user": user.username, "api_tokens": "revoked"})
        return response


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail is only ever appended to, by the services. Administrators filter and export
    it in the portal's Audit trail page (diagnosis.audit_views); this list is the same rows."""

    list_display = ["at", "actor", "action", "patient", "scan", "via", "ip_address", "details"]
    list_filter = ["action", "via", "actor"]
    search_fields = ["actor__username", "patient__medical_record_number"]
    date_hierarchy = "at"
    list_select_related = ["actor", "patient", "scan"]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["family_name", "given_name", "medical_record_number", "site"]
    search_fields = ["family_name", "given_name", "medical_record_number"]
    readonly_fields = [field.name for field in Patient._meta.fields]

    def get_queryset(self, request):
        return selectors.patients_visible_to(request.user).select_related("site")

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        shown = getattr(response, "context_data", {}).get("cl")
        if request.method == "GET" and shown is not None:
            audit(request, AuditEvent.Action.PATIENT_LISTED, via="admin", details={"query": request.GET.get("q", ""), "patients": ids(shown.result_list)})
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        patient = getattr(response, "context_data", {}).get("original")
        if request.method == "GET" and patient is not None:
            audit(request, AuditEvent.Action.PATIENT_VIEWED, patient=patient, via="admin")
        return response

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
    """Deleting an account's access attempts is how an administrator unlocks it: in the trail, and
    only for an account the administrator may change (account_rule)."""

    def has_delete_permission(self, request, obj=None):
        targets = User.objects.filter(username__iexact=obj.username) if obj is not None else []
        if any(account_rule.refusal(request.user, target) for target in targets):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        audit(request, AuditEvent.Action.SIGNIN_UNLOCKED, via="admin", details={"usernames": [obj.username]})

    def delete_queryset(self, request, queryset):
        usernames = sorted(set(queryset.values_list("username", flat=True)))
        super().delete_queryset(request, queryset)
        audit(request, AuditEvent.Action.SIGNIN_UNLOCKED, via="admin", details={"usernames": usernames})
