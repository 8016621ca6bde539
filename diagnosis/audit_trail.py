"""The services' writer of the audit trail, at the bottom of the app: it imports only the models, so
every service module (services, site_thresholds, staff, scan_intake) can record a row without
importing another service module, and no two of them import each other.
diagnosis.auditing says which writer a view uses instead."""
from .models import AuditEvent
from .query_params import jsonb_safe


def record_audit(actor, action, *, patient=None, scan=None, via="web", ip_address=None, details=None):
    """Append one row to the audit trail: the services' writer (views write theirs with
    diagnosis.auditing.audit, which says which to use); ml reaches this through ML_AUDIT_RECORDER. Returns it."""
    return AuditEvent.objects.create(
        actor=actor if actor and actor.is_authenticated else None,
        action=action,
        patient=patient,
        scan=scan if scan is not None and scan.pk else None,
        via=via,
        ip_address=ip_address,
        details=jsonb_safe(details or {}),
    )


def _json_value(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def changes_between(before, after):
    """{field: [old, new]} for every field whose value differs (dates as ISO text, for JSON)."""
    return {name: [_json_value(before.get(name)), _json_value(after.get(name))] for name in after if before.get(name) != after.get(name)}
