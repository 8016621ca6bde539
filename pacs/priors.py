"""Earlier chest films fetched from the PACS for one patient: a C-FIND by PatientID at study level,
then a C-MOVE of the chosen studies to the portal's own listener, where each instance goes through
pacs.receiving like any other (routing, matching, the intake every upload uses). This works with
any PACS that answers Query/Retrieve and knows the portal's AE title as a move destination
(docs/pacs.md). A node with a DICOMweb URL is asked over QIDO-RS and WADO-RS instead, and the
instances WADO-RS returns go through the same pacs.receiving.

Every query and every retrieval is one audit row with the node's AE title."""
import io
from dataclasses import dataclass

import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

from diagnosis.models import AuditEvent
from diagnosis.services import record_audit
from ml.engine.decode.dicom import RADIOGRAPH_MODALITIES

from . import receiving
from .models import DicomNode, ReceivedInstance
from .tcp import NO_DELAY

PENDING = (0xFF00, 0xFF01)
STUDY_KEYS = ("StudyInstanceUID", "StudyDate", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "AccessionNumber")


class PacsUnavailable(Exception):
    """The PACS could not be reached or refused the request; the message says so in words."""


@dataclass(frozen=True)
class Study:
    uid: str
    date: str
    description: str
    modalities: tuple
    images: int | None
    accession: str

    @property
    def shown_date(self):
        """YYYY-MM-DD from the DICOM date (YYYYMMDD), or "" when it is not one."""
        return f"{self.date[:4]}-{self.date[4:6]}-{self.date[6:8]}" if len(self.date) == 8 and self.date.isdigit() else ""

    @property
    def may_hold_chest_films(self):
        """A study whose modalities are stated and hold no radiograph (a CT, an MR) is not offered."""
        return not self.modalities or any(modality in RADIOGRAPH_MODALITIES for modality in self.modalities)


def node_for(patient):
    """The PACS of the patient's site that serves earlier films, or None."""
    return DicomNode.objects.filter(site_id=patient.site_id, serves_priors=True).order_by("ae_title").first()


def _association(node, context):
    ae = AE(ae_title=settings.PORTAL_DICOM_AE_TITLE)
    ae.add_requested_context(context)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = settings.PORTAL_DICOM_TIMEOUT
    association = ae.associate(node.host, node.port, ae_title=node.ae_title, evt_handlers=[NO_DELAY])
    if not association.is_established:
        how = "refused the association" if association.is_rejected else "did not answer"
        raise PacsUnavailable(f"The PACS {node.ae_title} at {node.host}:{node.port} {how}; try again later or ask IT.")
    return association


def _study(identifier):
    def text(keyword):
        return str(identifier.get(keyword, "") or "")
    modalities = identifier.get("ModalitiesInStudy", "") or ()
    images = identifier.get("NumberOfStudyRelatedInstances", None)
    return Study(uid=text("StudyInstanceUID"), date=text("StudyDate"), description=text("StudyDescription"),
                 modalities=tuple(str(m) for m in ([modalities] if isinstance(modalities, str) else modalities) if m),
                 images=int(images) if images not in (None, "") else None, accession=text("AccessionNumber"))


def _c_find(node, patient_id):
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient_id
    for keyword in STUDY_KEYS:
        setattr(query, keyword, "")
    association = _association(node, FIND)
    try:
        return [identifier for status, identifier in association.send_c_find(query, FIND)
                if status and status.Status in PENDING and identifier is not None]
    finally:
        association.release()


def _web(node, call):
    """Call the node's DICOMweb service (dicomweb-client); PacsUnavailable when it fails."""
    try:
        return call(DICOMwebClient(url=node.dicomweb_url.rstrip("/"), timeout=settings.PORTAL_DICOM_TIMEOUT))
    except (requests.RequestException, ValueError) as error:
        raise PacsUnavailable(f"The PACS {node.ae_title} at {node.dicomweb_url} did not answer ({type(error).__name__}); try again later or ask IT.") from error


def _qido(node, patient_id):
    answers = _web(node, lambda client: client.search_for_studies(search_filters={"PatientID": patient_id}, fields=list(STUDY_KEYS)))
    return [Dataset.from_json(answer) for answer in answers]


def find_studies(*, actor, patient, node, ip_address=None):
    """The studies the PACS holds under the patient's record number, newest first: QIDO-RS where
    the node has a DICOMweb URL, C-FIND otherwise."""
    details = {"ae_title": node.ae_title, "patient_id": patient.medical_record_number, "protocol": "QIDO-RS" if node.dicomweb_url else "C-FIND"}
    try:
        identifiers = (_qido if node.dicomweb_url else _c_find)(node, patient.medical_record_number)
    except PacsUnavailable as error:
        record_audit(actor, AuditEvent.Action.DICOM_QUERIED, patient=patient, ip_address=ip_address, details={**details, "error": str(error)})
        raise
    studies = sorted((study for study in map(_study, identifiers) if study.uid), key=lambda study: study.date, reverse=True)
    record_audit(actor, AuditEvent.Action.DICOM_QUERIED, patient=patient, ip_address=ip_address,
                 details={**details, "studies": [study.uid for study in studies]})
    return studies


def _c_move(node, study_uid):
    """The PACS sends the study to the listener (which commits each instance before acknowledging
    it); (completed, failed) as the PACS counts them."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    final = None
    association = _association(node, MOVE)
    try:
        for status, _ in association.send_c_move(identifier, settings.PORTAL_DICOM_AE_TITLE, MOVE):
            final = status if status else final
    finally:
        association.release()
    if final is None or final.Status not in (0x0000, 0xB000):
        code = f"0x{final.Status:04X}" if final is not None else "no answer"
        raise PacsUnavailable(f"The PACS {node.ae_title} could not send study {study_uid} ({code}).")
    return int(final.get("NumberOfCompletedSuboperations", 0) or 0), int(final.get("NumberOfFailedSuboperations", 0) or 0)


def _wado(node, study_uid):
    """WADO-RS: the study's instances come back in the response and go through the same receiving."""
    statuses = []
    for dataset in _web(node, lambda client: client.retrieve_study(study_uid)):
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        statuses.append(receiving.receive(node, buffer.getvalue(), via="dicomweb"))
    stored = statuses.count(receiving.SUCCESS)
    return stored, len(statuses) - stored


def retrieve_study(*, actor, patient, node, study_uid, ip_address=None):
    """Fetch one study (WADO-RS where the node has a DICOMweb URL, C-MOVE to the listener
    otherwise); returns what became of its instances. One audit row."""
    details = {"ae_title": node.ae_title, "study_instance_uid": study_uid, "protocol": "WADO-RS" if node.dicomweb_url else "C-MOVE"}
    try:
        completed, failed = (_wado if node.dicomweb_url else _c_move)(node, study_uid)
    except PacsUnavailable as error:
        record_audit(actor, AuditEvent.Action.DICOM_RETRIEVED, patient=patient, ip_address=ip_address, details={**details, "error": str(error)})
        raise
    outcomes = list(ReceivedInstance.objects.filter(study_instance_uid=study_uid, node=node).values_list("outcome", flat=True))
    record_audit(actor, AuditEvent.Action.DICOM_RETRIEVED, patient=patient, ip_address=ip_address,
                 details={**details, "completed": completed, "failed": failed, "outcomes": outcomes})
    return outcomes
