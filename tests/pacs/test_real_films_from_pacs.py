"""The real DICOM chest radiographs in ../shared/data/dicom (CR and DX, JPEG 2000 and JPEG
baseline among them) pushed from Orthanc to the listener: each is decoded by the intake and
acknowledged, none refused. No patient is registered, so each is held as unmatched with its file.
Skipped where the folder or Orthanc is absent."""
import pytest

from pacs.models import ReceivedInstance
from tests.pacs.conftest import needs_orthanc

from ..diagnosis.test_real_dicom import DICOM_DIR, dicom_files

pytestmark = [
    pytest.mark.real_data, needs_orthanc, pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not DICOM_DIR.is_dir(), reason=f"real DICOM samples not present at {DICOM_DIR}"),
]


def test_every_real_film_is_acknowledged_decoded_and_held_for_a_person_to_file(orthanc, orthanc_node):
    files = dicom_files()
    for path in files:
        status, answer = orthanc.send_to_portal(orthanc.upload(path.read_bytes()))
        assert status == 200, (path.name, answer)
    received = ReceivedInstance.objects.all()
    # Two of the samples are the same instance (one with its photometric interpretation altered): one row.
    assert received.count() == len({r.sop_instance_uid for r in received}) >= len(files) - 1
    assert {r.outcome for r in received} == {ReceivedInstance.Outcome.UNMATCHED} and all(r.stored_name for r in received)
