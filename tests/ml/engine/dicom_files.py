"""DICOM files made in the test process, with any header value, including ones no valid file holds."""
import io

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from tests.images import chest_like, dicom_bytes


def dicom_dataset(size=64, seed=0, **header) -> pydicom.Dataset:
    """A valid 12-bit DX chest-like DICOM; `header` values replace its elements. bytes are written
    as the element's raw value (so "abc" can be a Number of Frames), None removes the element."""
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(chest_like(size, seed))))
    for keyword, value in header.items():
        if value is None:
            if keyword in dataset:
                delattr(dataset, keyword)
        elif isinstance(value, bytes):
            tag = Tag(tag_for_keyword(keyword))
            value = value + b" " if len(value) % 2 else value  # DICOM values have even lengths
            dataset[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)
        else:
            setattr(dataset, keyword, value)
    return dataset


def to_bytes(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_file(size=64, seed=0, **header) -> bytes:
    return to_bytes(dicom_dataset(size, seed, **header))


def compressed_dicom(pixels: np.ndarray, syntax, frame: bytes | None = None) -> bytes:
    """`pixels` (12-bit values) as a DICOM of transfer syntax `syntax`: pydicom encodes it, or
    `frame` is the already encoded image for syntaxes pydicom cannot encode."""
    dataset = dicom_dataset(size=pixels.shape[0])
    dataset.Rows, dataset.Columns = pixels.shape
    if frame is None:
        dataset.compress(syntax, pixels, encoding_plugin="pyjpegls" if "JPEG-LS" in syntax.name else "")
    else:
        dataset.PixelData = pydicom.encaps.encapsulate([frame])
        dataset["PixelData"].VR = "OB"
        dataset.file_meta.TransferSyntaxUID = syntax
    return to_bytes(dataset)
