"""The model lifecycle's entries in the portal's one audit trail.

The trail (diagnosis.models.AuditEvent) stays with the clinical app: its rows point at patients and
scans, and a lower app holding it would depend on the clinical tables anyway. ml may not import
diagnosis, so it reaches the trail the way it reaches reviewed scans, through a setting
(ML_AUDIT_RECORDER, a function with services.record_audit's shape).

A service that records an action someone took over the web or the API takes `ip_address=None` and
hands it to `record`; its view passes `ip_address=client_ip(request)`. The rule for the address is
here rather than in diagnosis.auditing because ml's views need it too; diagnosis.auditing uses this one.
So is the rule for a reason a person must write (`written_reason`): ml's promotion override and
diagnosis's moves and identity confirmations ask it."""
import ipaddress
import unicodedata

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework.throttling import BaseThrottle


def client_ip(request):
    """The requester's address, as every audit row records it (a view hands it to a service) and the
    sign-in lockout logs it. Behind PORTAL_PROXY_COUNT reverse proxies, the address the outermost one
    saw, by the rule the API throttles count with (REST framework's NUM_PROXIES); what the client
    wrote further left in X-Forwarded-For is never taken. Anything that is not an address (a proxy
    that does not append, a forged header) gives REMOTE_ADDR."""
    try:
        return str(ipaddress.ip_address(BaseThrottle().get_ident(request)))
    except ValueError:
        return request.META.get("REMOTE_ADDR")


def record(actor, action, *, via=None, ip_address=None, **details):
    """One row: `action` is an AuditEvent action value (e.g. "model.promoted"); a call without an
    actor came from the command line. Inside the caller's transaction, so a refused write leaves no row."""
    signed_in = actor is not None and actor.is_authenticated
    recorder = import_string(settings.ML_AUDIT_RECORDER)
    recorder(actor if signed_in else None, action, via=via or ("web" if signed_in else "command"), ip_address=ip_address, details=details)


# Format characters (zero-width space and joiners, bidi marks), separators and controls: invisible.
INVISIBLE_CATEGORIES = {"Cf", "Zs", "Zl", "Zp", "Cc"}


def written_reason(reason, limit=500):
    """The reason as written (trimmed to `limit`), or "" when a reader would see nothing: without
    its format and space characters it must hold a visible one."""
    reason = (reason or "").strip()
    if all(unicodedata.category(character) in INVISIBLE_CATEGORIES for character in reason):
        return ""
    return reason[:limit]
