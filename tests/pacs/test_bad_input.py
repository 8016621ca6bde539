"""Bad input sent to the real listener by a pynetdicom SCU (the test as a modality): each gets a
DICOM status or an association rejection and a recorded reason, never a traceback, and nothing is
half-stored. Needs only the listener process, not Orthanc."""
import io

import pydicom
import pynetdicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from diagnosis.models import AuditEvent, Scan
from pacs.models import DicomNode, ReceivedInstance
from tests.conftest import stored_files
from tests.pacs.conftest import PORTAL_AET, SCU_AET, c_store, radiograph

pytestmark = pytest.mark.django_db(transaction=True)
CANNOT_UNDERSTAND, SUCCESS = 0xC000, 0x0000


def film(**header):
    """A chest film of the test patient, its header then changed (None removes an element)."""
    dataset = pydicom.dcmread(io.BytesIO(radiograph()))
    for keyword, value in header.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    return dataset


def in_mpeg2(dataset):
    """The film claiming MPEG-2 video compression: a transfer syntax no decoder here handles."""
    dataset.PixelData = encapsulate([b"\0\0\1\xb3" * 8])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = MPEG2MPML
    return dataset


def as_sent_file(folder, damage):
    """The film as a file whose meta header is intact (so the SCU can send it) and whose dataset
    `damage` (bytes -> bytes) spoils; the SCU sends the file's bytes as they are."""
    path = folder / "damaged.dcm"
    film().save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    # preamble and "DICM" (132 bytes), the group length element (12), then the rest of the meta
    meta_end = 132 + 12 + pydicom.dcmread(path).file_meta.FileMetaInformationGroupLength
    path.write_bytes(data[:meta_end] + damage(data[meta_end:]))
    return path


def refused_row():
    return AuditEvent.objects.get(action=AuditEvent.Action.DICOM_RECEIVED)


def assert_nothing_kept(files_before):
    assert not ReceivedInstance.objects.exists() and not Scan.objects.exists()
    assert stored_files() == files_before


@pytest.mark.parametrize(("bad", "reason"), [
    (lambda: film(PixelData=None), "The DICOM file holds no image (no Pixel Data element)."),
    (lambda: film(Rows=60000, Columns=60000), "The image is 60000x60000 pixels, more than the 40,000,000 pixels this portal accepts."),
    (lambda: in_mpeg2(film()), "The DICOM image is compressed with MPEG2 Main Profile / Main Level, which this portal cannot read."),
], ids=["no pixel data", "absurd dimensions", "transfer syntax no decoder handles"])
def test_a_film_the_intake_refuses_gets_cannot_understand_and_its_reason(dicom_listener, scu_node, patient, bad, reason):
    files_before = stored_files()
    dataset = bad()
    assert c_store(dicom_listener, dataset, syntax=dataset.file_meta.TransferSyntaxUID) == CANNOT_UNDERSTAND
    row = refused_row()
    assert row.details == {"ae_title": SCU_AET, "sop_instance_uid": dataset.SOPInstanceUID,
                           "study_instance_uid": dataset.StudyInstanceUID, "outcome": "refused", "reason": reason}
    assert_nothing_kept(files_before)


def test_a_patient_unknown_to_the_portal_with_a_film_it_cannot_read_is_refused_not_held(dicom_listener, scu_node, patient):
    # Unmatched films are kept for a person to file, but only once decoded: a broken one is refused.
    files_before = stored_files()
    assert c_store(dicom_listener, film(PatientID="MRN-4040", PixelData=None)) == CANNOT_UNDERSTAND
    assert refused_row().details["reason"] == "The DICOM file holds no image (no Pixel Data element)."
    assert_nothing_kept(files_before)


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda dataset: bytes(range(256)) * 4, "The data is not a readable DICOM dataset"),
    (lambda dataset: dataset[:-5000], "The DICOM file is damaged or incomplete"),
], ids=["noise instead of a dataset", "cut off inside the pixel data"])
def test_a_corrupt_dataset_gets_cannot_understand_and_nothing_is_stored(dicom_listener, scu_node, patient, tmp_path, monkeypatch, damage, reason):
    # pynetdicom's documented switch to send a file's bytes unread, as a sender with a damaged file would.
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    files_before = stored_files()
    assert c_store(dicom_listener, as_sent_file(tmp_path, damage)) == CANNOT_UNDERSTAND
    row = refused_row()
    assert row.details["outcome"] == "refused" and row.details["reason"].startswith(reason)
    assert_nothing_kept(files_before)


def test_a_film_without_any_patient_id_is_held_as_unmatched_with_its_reason(dicom_listener, scu_node, patient):
    dataset = film(PatientID=None)
    assert c_store(dicom_listener, dataset) == SUCCESS
    received = ReceivedInstance.objects.get()
    assert (received.outcome, received.reason, received.header_patient_id) == ("unmatched", "The header has no PatientID.", "")
    assert refused_row().details["outcome"] == "unmatched" and not Scan.objects.exists()


def test_an_unknown_ae_title_is_rejected_at_association_and_the_refusal_audited(dicom_listener, scu_node):
    association = c_store(dicom_listener, film(), calling_ae="STRANGER")
    assert association.is_rejected
    rejection = association.acceptor.primitive
    assert (rejection.result, rejection.result_source, rejection.diagnostic) == (0x01, 0x01, 0x03)  # permanent; service user; calling AE not recognised
    refused = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_REFUSED)
    assert refused.details == {"ae_title": "STRANGER", "reason": "The AE title is not a registered DICOM node."}
    assert refused.ip_address == "127.0.0.1" and not ReceivedInstance.objects.exists()


def test_a_node_that_may_not_send_is_rejected(dicom_listener, scu_node):
    scu_node.may_send = False
    scu_node.save()
    assert c_store(dicom_listener, film()).is_rejected
    assert AuditEvent.objects.get(action=AuditEvent.Action.DICOM_REFUSED).details["reason"] == "The node is registered but not allowed to send."


def test_the_same_instance_sent_twice_is_acknowledged_twice_and_kept_once(dicom_listener, scu_node, patient):
    dataset = film(PatientID="MRN-4040", SOPInstanceUID=generate_uid())
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    files_before = stored_files()
    assert c_store(dicom_listener, dataset) == c_store(dicom_listener, dataset) == SUCCESS
    assert ReceivedInstance.objects.count() == 1 and len(set(stored_files()) - set(files_before)) == 1


def test_a_node_stopped_while_its_association_is_open_gets_a_failure_for_the_next_instance(dicom_listener, scu_node, patient):
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
    association = ae.associate("127.0.0.1", dicom_listener.port, ae_title=PORTAL_AET)
    assert association.is_established
    try:
        DicomNode.objects.filter(pk=scu_node.pk).update(may_send=False)
        assert association.send_c_store(film()).Status == CANNOT_UNDERSTAND
    finally:
        association.release()
    refused = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_REFUSED)
    assert refused.details == {"ae_title": SCU_AET, "reason": "The node is registered but not allowed to send."}
    assert not ReceivedInstance.objects.exists() and not Scan.objects.exists()
