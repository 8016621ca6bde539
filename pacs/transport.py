"""Putting DICOM objects into a node: C-STORE (pynetdicom) to its host and port, or STOW-RS
(dicomweb-client) to its DICOMweb base URL when it has one.

Two kinds of failure, because they call for different things: NodeUnreachable (no connection, a
dropped association, a PACS out of resources, an HTTP 5xx) heals by waiting, so the send is tried
again later; ObjectRefused (the PACS understood the object and said no) will not, so the send
fails with the PACS's answer in a sentence for a person to act on."""
import logging
from collections.abc import Callable
from dataclasses import dataclass

import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from .tcp import NO_DELAY

logger = logging.getLogger(__name__)
# pynetdicom logs every association and PDU at INFO; a send's outcome is the job's and the audit's to say.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)


class NodeUnreachable(Exception):
    """The node could not take the object now; trying again later may work."""


class ObjectRefused(Exception):
    """The node refused the object; sending it again will not change its answer."""


# PS3.4 B.2.3: warnings (coercion, elements discarded, data set does not match the class) mean stored.
STORED = {0x0000, 0xB000, 0xB006, 0xB007}


def _out_of_resources(status):
    return 0xA700 <= status <= 0xA7FF


@dataclass(frozen=True)
class Outgoing:
    """An object to store, made only when its turn comes: the objects before it are in the node
    sooner, and do not wait for it to be made. `make()` returns the dataset, or None to skip it
    (its caller decided it is not to be sent after all). The SOP class is known beforehand: the
    association proposes a presentation context for each class it will carry."""

    name: str  # in the sentences: "Structured Report", "Secondary Capture"
    sop_class_uid: str
    sop_instance_uid: str
    make: Callable


def store(node, objects, on_stored):
    """Make and store each Outgoing of `objects` in the node, in order; `on_stored(name, dataset)`
    is called as soon as the node confirmed one, before the next is made. Raises NodeUnreachable or
    ObjectRefused for the first that was not stored."""
    if node.dicomweb_url:
        _stow(node, objects, on_stored)
    else:
        _c_store(node, objects, on_stored)


def _c_store(node, objects, on_stored):
    ae = AE(ae_title=settings.PORTAL_DICOM_AE_TITLE)
    for sop_class in {str(each.sop_class_uid) for each in objects}:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae.connection_timeout = ae.acse_timeout = settings.PORTAL_PACS_CONNECT_TIMEOUT
    ae.dimse_timeout = ae.network_timeout = settings.PORTAL_DICOM_TIMEOUT
    where = f"{node.ae_title} at {node.host}:{node.port}"
    association = ae.associate(node.host, node.port, ae_title=node.ae_title, evt_handlers=[NO_DELAY])
    if association.is_rejected:
        raise NodeUnreachable(f"The PACS {where} rejected the association: it may not know the portal's AE title "
                              f"{settings.PORTAL_DICOM_AE_TITLE} or its address.")
    if not association.is_established:
        raise NodeUnreachable(f"The PACS {where} did not answer (connection refused, timed out or aborted).")
    try:
        for each in objects:
            name, dataset = each.name, each.make()
            if dataset is None:
                continue
            answer = association.send_c_store(dataset)
            if "Status" not in answer:
                raise NodeUnreachable(f"The connection to the PACS {where} was lost while sending the {name}.")
            if answer.Status in STORED:
                on_stored(name, dataset)
            elif _out_of_resources(answer.Status):
                raise NodeUnreachable(f"The PACS {where} is out of resources (status 0x{answer.Status:04X}) and could not store the {name}.")
            else:
                raise ObjectRefused(f"The PACS {where} refused the {name} with status 0x{answer.Status:04X}.")
    finally:
        if association.is_established:
            association.release()


def _stow(node, objects, on_stored):
    client = DICOMwebClient(url=node.dicomweb_url.rstrip("/"), timeout=(settings.PORTAL_PACS_CONNECT_TIMEOUT, settings.PORTAL_DICOM_TIMEOUT))
    for each in objects:
        name, dataset = each.name, each.make()
        if dataset is None:
            continue
        try:
            answer = client.store_instances(datasets=[dataset], study_instance_uid=dataset.StudyInstanceUID)
        except (requests.ConnectionError, requests.Timeout):
            raise NodeUnreachable(f"The DICOMweb service of {node.ae_title} at {node.dicomweb_url} did not answer.") from None
        except requests.HTTPError as error:
            code = error.response.status_code if error.response is not None else 0
            if code >= 500 or code in (408, 429):
                raise NodeUnreachable(f"The DICOMweb service of {node.ae_title} answered HTTP {code} to the {name}.") from None
            raise ObjectRefused(f"The DICOMweb service of {node.ae_title} refused the {name} (HTTP {code}).") from None
        if answer.get("FailedSOPSequence"):
            reason = answer.FailedSOPSequence[0].get("FailureReason", 0)
            raise ObjectRefused(f"The DICOMweb service of {node.ae_title} refused the {name} (failure reason 0x{reason:04X}).")
        on_stored(name, dataset)
