"""The writes of the pacs app: DICOM nodes registered, changed and removed by administrators, each
with its audit row (what the listener writes for each instance is pacs.receiving)."""
from django.db import transaction

from diagnosis.models import AuditEvent
from diagnosis.services import changes_between, record_audit

NODE_FIELDS = ("ae_title", "host", "port", "dicomweb_url", "site", "may_send", "receives_results", "serves_priors", "sender_account")
RELATED_FIELDS = ("site", "sender_account")


def _fields(node):
    return {name: str(getattr(node, name) or "") if name in RELATED_FIELDS else getattr(node, name) for name in NODE_FIELDS}


@transaction.atomic
def save_node(*, actor, node, via="web", ip_address=None):
    """Register a node (no pk yet) or save the changes made to one; one audit row says what changed."""
    before = {} if node._state.adding else _fields(type(node).objects.get(pk=node.pk))
    node.save()
    record_audit(actor, AuditEvent.Action.DICOM_NODE_CHANGED, via=via, ip_address=ip_address,
                 details={"ae_title": node.ae_title, "changes": changes_between(before, _fields(node))})
    return node


@transaction.atomic
def remove_node(*, actor, node, via="web", ip_address=None):
    record_audit(actor, AuditEvent.Action.DICOM_NODE_CHANGED, via=via, ip_address=ip_address,
                 details={"ae_title": node.ae_title, "removed": True})
    node.delete()
