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
