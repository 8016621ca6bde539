"""One-time set-password links that die with the account's state, and the page that uses them.

Django's reset token already hashes the password and the last sign-in, so a link stops working
once the password is set or the person signs in. Here it also hashes whether the account is
active, its groups and direct permissions, and how many links were issued: deactivation, a role
change or a newer link voids every older link. The page is Django's own (it swaps the token for a
session marker and redirects to .../set-password/, so the form's address holds no token); setting
the password writes an audit row."""
from django.contrib.auth import views as auth_views
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import transaction
from django.db.models import F
from django.urls import reverse, reverse_lazy
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .auditing import client_ip
from .models import AuditEvent, StaffProfile
from .services import record_audit


class AccountStateTokenGenerator(PasswordResetTokenGenerator):
    def _make_hash_value(self, user, timestamp):
        profile = StaffProfile.objects.filter(user=user).values("password_links_issued").first() or {}
        groups = sorted(user.groups.values_list("pk", flat=True))
        permissions = sorted(user.user_permissions.values_list("pk", flat=True))
        state = f"{user.is_active}{user.is_superuser}{groups}{permissions}{profile.get('password_links_issued', 0)}"
        return super()._make_hash_value(user, timestamp) + state


set_password_tokens = AccountStateTokenGenerator()


def issue_link_path(user):
    """The path of a new link for `user`; every older link stops working."""
    with transaction.atomic():
        profile, _ = StaffProfile.objects.get_or_create(user=user)
        StaffProfile.objects.filter(pk=profile.pk).update(password_links_issued=F("password_links_issued") + 1)
        token = set_password_tokens.make_token(user)
    return reverse("set_password", kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": token})


class SetPasswordView(auth_views.PasswordResetConfirmView):
    template_name = "registration/set_password.html"
    success_url = reverse_lazy("set_password_done")
    token_generator = set_password_tokens

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            record_audit(None, AuditEvent.Action.PASSWORD_SET_BY_LINK, ip_address=client_ip(self.request), details={"user": self.user.username})
        return response
