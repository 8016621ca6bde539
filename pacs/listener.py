"""The DICOM listener (`bin/portal dicom-listener`): a Storage SCP and a Verification SCP (C-ECHO)
with pynetdicom, under the AE title and port of the settings.

An association is accepted only from a registered node that may send, calling with its own AE
title from its own host; any other is rejected before a byte of data is sent, and audited. Each
instance goes through pacs.receiving. pynetdicom runs every association in a thread of its own, with
a database connection of its own that lasts as long as the association (on_association_end)."""
import ctypes
import logging
import signal
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from diagnosis.models import AuditEvent
from diagnosis.services import record_audit

from . import receiving
from .models import DicomNode
from .tcp import NO_DELAY

logger = logging.getLogger(__name__)
# pynetdicom logs every association and PDU at INFO; the listener logs what matters itself.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)
REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03
# The largest PDU a sender may send us (AE.maximum_pdu_size). pynetdicom handles each PDU in several
# passes of its reactor, so its default of 16 kB costs 130 rounds for a 2 MB film; 256 kB cut its
# CPU for receiving one from about 18 to 10 ms, while 1 MB and more cost more again (the reads then
# outrun a pynetdicom sender and wait on the socket). Measured in docs/pacs.md ("Listener CPU").
MAXIMUM_PDU_SIZE = 256 * 1024
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h, for mallopt(3)


def host_addresses(host):
    """Every address a node's host name (or address) stands for."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


def node_refusal(ae_title, peer_ip):
    """(node, None) for a node allowed to send from this address; (None, why) otherwise."""
    node = DicomNode.objects.select_related("site").filter(ae_title=ae_title.strip()).first()
    if node is None:
        return None, "The AE title is not a registered DICOM node."
    if not node.may_send:
        return None, "The node is registered but not allowed to send."
    if peer_ip not in host_addresses(node.host):
        return None, f"The association came from {peer_ip}, not from the node's host {node.host}."
    return node, None


def _record_refusal(calling, peer_ip, refusal):
    record_audit(None, AuditEvent.Action.DICOM_REFUSED, via="dicom", ip_address=peer_ip, details={"ae_title": calling, "reason": refusal})
    logger.warning("%s at %s refused: %s", calling, peer_ip, refusal)


def on_requested(event):
    # The requestor's ae_title is filled in only after negotiation; the request itself carries it.
    calling, peer_ip = event.assoc.requestor.primitive.calling_ae_title, event.assoc.requestor.address
    try:
        node, refusal = node_refusal(calling, peer_ip)
        if node is None:
            _record_refusal(calling, peer_ip, refusal)
            event.assoc.acse.send_reject(REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNISED)
            _wait_until_sent(event.assoc)
    finally:
        close_old_connections()


def _wait_until_sent(association, timeout=2.0):
    """pynetdicom queues the A-ASSOCIATE-RJ for its DUL thread and closes the socket as soon as this
    handler returns: without waiting, the sender often sees the connection drop (an abort) instead
    of the rejection and its reason. Sta13 is "PDU sent, awaiting transport close" (PS3.8 9.2)."""
    deadline = time.monotonic() + timeout
    while association.dul.state_machine.current_state != "Sta13" and time.monotonic() < deadline:
        time.sleep(0.005)


def on_store(event):
    try:
        calling, peer_ip = event.assoc.requestor.ae_title, event.assoc.requestor.address
        node, refusal = node_refusal(calling, peer_ip)
        if node is None:  # the node was changed while its association was open
            _record_refusal(calling, peer_ip, refusal)
            return receiving.CANNOT_UNDERSTAND
        return receiving.receive(node, event.encoded_dataset(), peer_ip=peer_ip)
    finally:
        _close_if_broken()


def _close_if_broken():
    """After each instance, what close_old_connections does after a web request, less the age rule:
    with SQLite (CONN_MAX_AGE 0) that rule reopened the connection for every instance, about 7 ms
    of CPU each (docs/pacs.md, "Listener CPU"). The association keeps it until it ends; one that saw
    an error and no longer answers is closed here, so the next instance opens a fresh one."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.is_usable():
            connection.close()


def on_association_end(event):
    """EVT_RELEASED and EVT_ABORTED (a peer that drops the connection is an A-P-ABORT) run in the
    association's thread, the one whose connection this closes."""
    connections.close_all()


def on_echo(event):
    return 0x0000


def application_entity():
    ae = AE(ae_title=settings.PORTAL_DICOM_AE_TITLE)
    # Every storage class in any transfer syntax (the intake says which it cannot decode), except
    # deflate: inflated in memory before any size check, it is refused at upload too.
    syntaxes = [uid for uid in ALL_TRANSFER_SYNTAXES if uid != DeflatedExplicitVRLittleEndian]
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, syntaxes)
    ae.add_supported_context(Verification)
    ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = settings.PORTAL_DICOM_TIMEOUT
    ae.maximum_pdu_size = MAXIMUM_PDU_SIZE
    return ae


HANDLERS = [NO_DELAY, (evt.EVT_REQUESTED, on_requested), (evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, on_echo),
            (evt.EVT_RELEASED, on_association_end), (evt.EVT_ABORTED, on_association_end)]


def keep_freed_memory():
    """A received film passes through several buffers of its size (pynetdicom's PDUs and dataset, the
    intake's copy, the pixels). By default glibc's malloc gives such blocks back to the system when
    they are freed, and the next film takes them again a page at a time: 2,550 page faults per 2 MB
    film, roughly 10-20 ms of the listener's CPU on the bench machine (docs/pacs.md, "Listener CPU").
    Blocks up to 32 MB now come from the heap, and up to 64 MB of freed memory per malloc arena
    (threads spread over several) stays in the process for the next film: about 5 faults per film. Only glibc has
    mallopt(3); another C library (musl, macOS) keeps its own behaviour."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter itself runs on
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
    mallopt(M_TRIM_THRESHOLD, 64 * 2**20)


def serve():
    """Listen until SIGTERM or SIGINT (blocks). Every instance acknowledged was committed first, so
    stopping in the middle of an association loses nothing the sender was told was stored."""
    keep_freed_memory()
    server = application_entity().start_server((settings.PORTAL_DICOM_HOST, settings.PORTAL_DICOM_PORT), block=False, evt_handlers=HANDLERS)
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *args: stop.set())
    logger.info("DICOM listener ready: AE title %s on %s:%s", settings.PORTAL_DICOM_AE_TITLE, settings.PORTAL_DICOM_HOST, settings.PORTAL_DICOM_PORT)
    stop.wait()
    server.shutdown()
