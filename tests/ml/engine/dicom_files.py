"""DICOM files made in the test process, with any header value, including ones no valid file holds."""
import functools
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
    dataset = pydicom.dcmread(io.BytesIO(_base_file(size, seed)))
    for keyword, value in header.items():
        if value is None:
            if keyword in dataset:
                delattr(dataset, keyword)
        elif isinstance(value, bytes):
            tag = Tag(tag_for_keyword(keyword))
            value = value + b" " if len(value) % 2 else value  # DICOM values have even lengths
            vr = dictionary_VR(tag).split(" or ")[0]  # "OB or OW" for Pixel Data: raw bytes are OB
            dataset[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
        else:
            setattr(dataset, keyword, value)
    return dataset


@functools.cache
def _base_file(size: int, seed: int) -> bytes:
    """The file as read back with a character set: pydicom writes raw values unchanged only when
    the character set is the one the file was read with."""
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(chest_like(size, seed))))
    dataset.SpecificCharacterSet = "ISO_IR 100"
    return to_bytes(dataset)


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


def with_character_set(data: bytes, value: bytes) -> bytes:
    """`data` (explicit VR little endian, as dicom_file makes it) with the Specific Character Set's that element's raw
    raw value replaced: pydicom refuses to write some values a reader must still survive."""
    start = data.index(b"\x08\x00\x05\x00CS")
    length = int.from_bytes(data[start + 6:start + 8], "little")
    value = value + b" " if len(value) % 2 else value
    return data[:start + 6] + len(value).to_bytes(2, "little") + value + data[start + 8 + length:]


def compressed_frame(pixels: np.ndarray, syntax) -> bytes:
    """The one encoded frame pydicom makes of `pixels` in `syntax`."""
    dataset = pydicom.dcmread(io.BytesIO(compressed_dicom(pixels, syntax)))
    return next(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1))
