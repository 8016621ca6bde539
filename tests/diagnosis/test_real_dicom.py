"""The five real DICOM chest radiographs in the shared data's dicom folder (tests.shared_data) go
through the upload path. Skipped where that folder is absent (a fresh clone without the shared data)."""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from diagnosis import scan_intake
from diagnosis.models import Scan
from ml.engine import decode_image_bytes
from tests.shared_data import SHARED_DATA, needs

DICOM_DIR = SHARED_DATA / "dicom"
pytestmark = [
    pytest.mark.real_data,
    needs(DICOM_DIR),
]


def dicom_files():
    return sorted(DICOM_DIR.glob("*.dcm")) if DICOM_DIR.is_dir() else []


@pytest.mark.django_db
@pytest.mark.parametrize("path", dicom_files(), ids=lambda path: path.name[:40])
def test_real_dicom_is_accepted(clinician, patient, path):
    # Public samples name their own (anonymised) patients: filing one under the test patient needs
    # the confirmation a clinician would give.
    (scan,) = scan_intake.submit_scans(
        actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("study.dcm", path.read_bytes())],
        confirm_identity_mismatch=True, identity_mismatch_reason="Public sample filed under a test patient.",
    )
    scan = Scan.objects.get(pk=scan.pk)
    assert scan.file_format == "dicom" and min(scan.width, scan.height) >= 440


def test_monochrome1_comes_out_as_the_inverse_of_its_monochrome2_twin():
    (original,) = DICOM_DIR.glob("siim_acr_cr_chest_pa_1.2.276*.dcm")
    (inverted,) = DICOM_DIR.glob("siim_acr_cr_chest_pa_FAKE_MONOCHROME1*.dcm")
    a = decode_image_bytes(original.read_bytes()).pixels.astype(int)
    b = decode_image_bytes(inverted.read_bytes()).pixels.astype(int)
    assert np.array_equal(a + b, np.full_like(a, 255))


def test_monochrome1_radiographs_show_bone_bright():
    """In a chest film the mediastinum (centre) is brighter than the lungs either side of it."""
    (barre,) = DICOM_DIR.glob("barre_CR-MONO1*.dcm")  # both MONOCHROME1 films must be there, or nothing is checked
    (nema,) = DICOM_DIR.glob("nema_wg04*.dcm")
    for path in (barre, nema):
        pixels = decode_image_bytes(path.read_bytes()).pixels.astype(float)
        height, width = pixels.shape
        rows = slice(height // 3, 2 * height // 3)
        centre = pixels[rows, int(width * 0.45):int(width * 0.55)].mean()
        lungs = (pixels[rows, int(width * 0.2):int(width * 0.3)].mean() + pixels[rows, int(width * 0.7):int(width * 0.8)].mean()) / 2
        assert centre > lungs, path.name
