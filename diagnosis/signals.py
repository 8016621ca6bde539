"""Receivers connected when the app loads (DiagnosisConfig.ready). A module of their own, light to
import: every process loads it, and the API views they once lived in (DRF, knox's views, the
schema tools) took about 0.2 s of each worker's start."""
from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from knox.models import AuthToken

from ml.audit import client_ip

from .models import AuditEvent
from .services import record_audit


@receiver(pre_save, sender=get_user_model(), dispatch_uid="revoke_api_tokens")
def revoke_tokens_when_credentials_change(sender, instance, raw=False, **kwargs):
    """A new password or a deactivated account ends every API token of that user (sessions end
    through Django's session hash already)."""
    if raw or instance.pk is None:
        return
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before and (before["password"] != instance.password or (before["is_active"] and not instance.is_active)):
        AuthToken.objects.filter(user=instance).delete()


@receiver(user_locked_out, dispatch_uid="audit_lockouts")
def audit_lockout(sender, request, username, ip_address, **kwargs):
    """A sign-in refused because the account is locked (the lockout itself and each refusal after it)."""
    record_audit(None, AuditEvent.Action.SIGNIN_LOCKED_OUT, via="api" if getattr(request, "path", "").startswith("/api/") else "web", ip_address=ip_address, details={"username": username})


@receiver(post_save, sender="ml.Promotion", dispatch_uid="sites_meet_a_new_version")
def apply_the_site_rule_to_a_promotion(sender, instance, created=False, raw=False, **kwargs):
    """A live site whose blind-read films the newly active version missed goes back to silent, in
    the promotion's transaction (diagnosis.site_remeasure); a reduced-precision version is checked on
    every silent site's films (diagnosis.site_precision)."""
    if created and not raw:
        from . import site_precision, site_remeasure

        site_remeasure.after_promotion(instance)
        site_precision.after_promotion(instance)


def _via(request):
    path = getattr(request, "path", "")
    return "api" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "web"


def _address(request):
    return client_ip(request) if request is not None else None


@receiver(user_logged_in, dispatch_uid="audit_sign_ins")
def audit_sign_in(sender, request, user, **kwargs):
    record_audit(user, AuditEvent.Action.SIGNED_IN, via=_via(request), ip_address=_address(request), details={"username": user.username})


@receiver(user_login_failed, dispatch_uid="audit_failed_sign_ins")
def audit_failed_sign_in(sender, credentials, request=None, **kwargs):
    """A wrong username or password (the API's token requests too); a locked account's refusal is its own row."""
    if getattr(request, "axes_locked_out", False):
        return
    record_audit(None, AuditEvent.Action.SIGNIN_FAILED, via=_via(request), ip_address=_address(request), details={"username": str(credentials.get("username", ""))[:150]})


@receiver(user_logged_out, dispatch_uid="audit_sign_outs")
def audit_sign_out(sender, request, user, **kwargs):
    if user is not None:
        record_audit(user, AuditEvent.Action.SIGNED_OUT, via=_via(request), ip_address=_address(request), details={"username": user.username})
