"""What the DICOM viewer (frontend/viewer.js, Cornerstone3D) reads for a scan: the original stored
DICOM byte for byte, at its full bit depth; or, for a PNG or JPEG upload, the file's own pixels (8 or
16 bits, grey or colour) wrapped in a DICOM Secondary Capture, so one loader (Cornerstone's
dicom-image-loader) opens every film the same way and no second image loader is written by hand.
The wrapper carries no patient identity: the film's record is the portal's, and the page names it."""
import io

import numpy as np
from PIL import Image, ImageOps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, SecondaryCaptureImageStorage, generate_uid

from . import storage

DICOM = "dicom"


def viewer_dicom(scan):
    """The bytes the viewer loads for `scan` (FileNotFoundError when its file has gone)."""
    data = storage.read(scan.stored_name)
    return data if scan.file_format == DICOM else _secondary_capture(data, scan)


def _pixels(data):
    """The upload's pixels as stored: 16-bit grey stays 16-bit (window and level need every bit),
    8-bit grey stays grey, anything with colour is RGB. EXIF orientation applied, as the film page did."""
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):
            return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        if image.mode in ("L", "LA", "1"):
            return np.asarray(image.convert("L"), dtype=np.uint8)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _secondary_capture(data, scan):
    pixels = np.ascontiguousarray(_pixels(data))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "OT"
    # WSD: made at a workstation, from a file that was not DICOM.
    dataset.ConversionType = "WSD"
    dataset.DerivationDescription = f"{scan.file_format.upper()} upload, pixels unchanged"
    dataset.Rows, dataset.Columns = pixels.shape[:2]
    colour = pixels.ndim == 3
    dataset.SamplesPerPixel = 3 if colour else 1
    dataset.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        dataset.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    dataset.BitsAllocated = dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
