"""Earlier chest films fetched from the PACS for one patient: a C-FIND by PatientID at study level,
then a C-MOVE of the chosen studies to the portal's own listener, where each instance goes through
pacs.receiving like any other (routing, matching, the intake every upload uses). Pure DICOM, so it
works with any PACS that answers Query/Retrieve; the PACS must know the portal's AE title as a
move destination, as it must to send films at all (docs/pacs.md).

Every query and every retrieval is one audit row with the node's AE title."""
from dataclasses import dataclass

from django.conf import settings
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

from diagnosis.models import AuditEvent
from diagnosis.services import record_audit
from ml.engine.decode.dicom import RADIOGRAPH_MODALITIES

from .models import DicomNode, ReceivedInstance

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
    association = ae.associate(node.host, node.port, ae_title=node.ae_title)
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


def find_studies(*, actor, patient, node, ip_address=None):
    """The studies the PACS holds under the patient's record number, newest first."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient.medical_record_number
    for keyword in STUDY_KEYS:
        setattr(query, keyword, "")
    details = {"ae_title": node.ae_title, "patient_id": patient.medical_record_number}
    try:
        association = _association(node, FIND)
    except PacsUnavailable as error:
        record_audit(actor, AuditEvent.Action.DICOM_QUERIED, patient=patient, ip_address=ip_address, details={**details, "error": str(error)})
        raise
    try:
        answers = [_study(identifier) for status, identifier in association.send_c_find(query, FIND)
                   if status and status.Status in PENDING and identifier is not None]
    finally:
        association.release()
    studies = sorted((study for study in answers if study.uid), key=lambda study: study.date, reverse=True)
    record_audit(actor, AuditEvent.Action.DICOM_QUERIED, patient=patient, ip_address=ip_address,
                 details={**details, "studies": [study.uid for study in studies]})
    return studies


def retrieve_study(*, actor, patient, node, study_uid, ip_address=None):
    """C-MOVE one study to the portal's listener; returns what became of its instances (the
    listener committed each before the PACS was told it was stored). One audit row."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    details = {"ae_title": node.ae_title, "study_instance_uid": study_uid, "destination": settings.PORTAL_DICOM_AE_TITLE}
    final = None
    try:
        association = _association(node, MOVE)
        try:
            for status, _ in association.send_c_move(identifier, settings.PORTAL_DICOM_AE_TITLE, MOVE):
                final = status if status else final
        finally:
            association.release()
        if final is None or final.Status not in (0x0000, 0xB000):
            code = f"0x{final.Status:04X}" if final is not None else "no answer"
            raise PacsUnavailable(f"The PACS {node.ae_title} could not send study {study_uid} ({code}).")
    except PacsUnavailable as error:
        record_audit(actor, AuditEvent.Action.DICOM_RETRIEVED, patient=patient, ip_address=ip_address, details={**details, "error": str(error)})
        raise
    outcomes = list(ReceivedInstance.objects.filter(study_instance_uid=study_uid, node=node).values_list("outcome", flat=True))
    record_audit(actor, AuditEvent.Action.DICOM_RETRIEVED, patient=patient, ip_address=ip_address,
                 details={**details, "completed": int(final.get("NumberOfCompletedSuboperations", 0) or 0),
                          "failed": int(final.get("NumberOfFailedSuboperations", 0) or 0), "outcomes": outcomes})
    return outcomes
