"""Synthetic images made in the test process; no real patient data is needed for the suite."""
import io

import numpy as np
from PIL import Image


def chest_like(size=128, seed=0):
    """A grayscale array with two darker 'lung fields' on a brighter body, enough to look like an X-ray."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = 170 - 60 * (((x - 0.3) / 0.16) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1) - 60 * (((x - 0.7) / 0.16) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1)
    return np.clip(body + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8)


def encode(pixels, image_format="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def png_bytes(size=128, seed=0):
    return encode(chest_like(size, seed), "PNG")


def jpeg_bytes(size=128, seed=0):
    return encode(chest_like(size, seed), "JPEG")


def dicom_bytes(pixels, photometric="MONOCHROME2", bits=12, modality="DX", body_part=None):
    """A minimal but valid DICOM file holding `pixels` scaled to `bits` bits."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset("synthetic.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = modality
    if body_part is not None:
        dataset.BodyPartExamined = body_part
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = 16
    dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    scaled = (pixels.astype(np.uint32) * ((2**bits - 1) // 255)).astype(np.uint16)
    dataset.PixelData = scaled.tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
