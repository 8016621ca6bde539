"""The DICOM listener (pacs.listener, `bin/portal dicom-listener`): its AE title and where it listens.
Which nodes may send to it is data (pacs.models.DicomNode), not settings."""
import environ

env = environ.Env()

PORTAL_DICOM_AE_TITLE = env.str("PORTAL_DICOM_AE_TITLE", default="CXR_PORTAL")
# Loopback by default: a laptop's `make run` listens to nobody else; a hospital deployment sets 0.0.0.0.
PORTAL_DICOM_HOST = env.str("PORTAL_DICOM_HOST", default="127.0.0.1")
PORTAL_DICOM_PORT = env.int("PORTAL_DICOM_PORT", default=11112)
# How long an idle association is kept open, and how long a network read may wait (seconds).
PORTAL_DICOM_TIMEOUT = env.int("PORTAL_DICOM_TIMEOUT", default=30)

# Results sent back to a node (pacs.sending): a node that cannot be reached is tried again after
# PORTAL_PACS_RETRY_FIRST_SECONDS, doubling up to PORTAL_PACS_RETRY_MAX_SECONDS between tries,
# for PORTAL_PACS_GIVE_UP_HOURS after the result was made; then the send fails with its reason.
PORTAL_PACS_RETRY_FIRST_SECONDS = env.int("PORTAL_PACS_RETRY_FIRST_SECONDS", default=10)
PORTAL_PACS_RETRY_MAX_SECONDS = env.int("PORTAL_PACS_RETRY_MAX_SECONDS", default=600)
PORTAL_PACS_GIVE_UP_HOURS = env.int("PORTAL_PACS_GIVE_UP_HOURS", default=72)
# How long opening an association or a DICOMweb request to a node may take (seconds): short, as
# the PACS worker sends nothing else while it waits for a node that is down.
PORTAL_PACS_CONNECT_TIMEOUT = env.int("PORTAL_PACS_CONNECT_TIMEOUT", default=5)
# A send worker that takes a send also takes the other sends due to the same node, up to this
# many in all, and stores their objects over one association (pacs.sending; 1: one at a time).
PORTAL_PACS_SENDS_PER_ASSOCIATION = env.int("PORTAL_PACS_SENDS_PER_ASSOCIATION", default=8)
