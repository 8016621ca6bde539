"""DICOM: the pixels of a radiograph, and who and what the file's header says it is.

`ml.engine.decode.images.decode_image_bytes` calls `decode_dicom` and puts the `DicomIdentity` on the
`DecodedImage` it returns. The portal compares that identity with the patient the scan is filed
under and asks `chest_radiograph_refusal` whether the study is one the model can read.

Header values are checked here, before the pixels are decoded, so the common faults get a precise
sentence; anything else pydicom or NumPy raise on a malformed file becomes `ImageDecodeError` at
the boundary in `decode_image_bytes`.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.datadict import dictionary_description
from pydicom.encaps import generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from .pixels import ImageDecodeError, check_pixel_count, stretch_to_uint8

# DR is not a DICOM modality code, but some digital radiography systems write it instead of DX.
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR")
MODALITY_NAMES = {
    "CT": "a CT scan", "MR": "an MRI scan", "US": "an ultrasound study", "NM": "a nuclear medicine study",
    "PT": "a PET scan", "MG": "a mammogram", "XA": "an angiogram", "RF": "a fluoroscopy study",
    "IO": "a dental X-ray", "PX": "a panoramic dental X-ray", "ES": "an endoscopy", "XC": "a photograph",
    "SC": "a screen capture", "OT": "an image of an unspecified kind", "SR": "a report",
}
# Body Part Examined is free text in practice ("CHEST", "THORAX", "Chest PA", "TORAX", "LUNGS").
CHEST_WORDS = ("CHEST", "THORA", "TORAX", "LUNG")
TEXT_LIMIT = 200  # identity values go into pages and audit rows; a header cannot make them unbounded
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
IDENTITY_KEYWORDS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "accession_number": "AccessionNumber",
    "study_instance_uid": "StudyInstanceUID",
    "view_position": "ViewPosition",
    "modality": "Modality",
    "body_part_examined": "BodyPartExamined",
}


@dataclass(frozen=True)
class DicomIdentity:
    """The header's words as written (dates YYYYMMDD, names FAMILY^GIVEN); "" when absent or unreadable."""

    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""
    view_position: str = ""
    modality: str = ""
    body_part_examined: str = ""


def read_identity(dataset: pydicom.Dataset) -> DicomIdentity:
    return DicomIdentity(**{field: header_text(dataset, keyword) for field, keyword in IDENTITY_KEYWORDS.items()})


def chest_radiograph_refusal(identity: DicomIdentity) -> str | None:
    """None when the header describes a radiograph (CR, DX or DR) of the chest, or of an unstated body
    part; otherwise the sentence that tells the clinician why the model cannot read it."""
    modality = identity.modality.upper()
    if modality not in RADIOGRAPH_MODALITIES:
        if not modality:
            return "The DICOM file does not say what kind of study it is; only chest X-rays (CR, DX or DR) can be read."
        kind = MODALITY_NAMES.get(modality, f"a study of modality {modality}")
        return f"This DICOM file is {kind}, not an X-ray; only chest X-rays (CR, DX or DR) can be read."
    body_part = identity.body_part_examined.upper()
    if body_part and not any(word in body_part for word in CHEST_WORDS):
        return f"This DICOM file is an X-ray of the {body_part.lower()}, not of the chest; only chest X-rays can be read."
    return None


def decode_dicom(data: bytes, max_pixels: int) -> tuple[np.ndarray, DicomIdentity]:
    """The image as 2-D uint8 grayscale (bone bright), and the header's identity."""
    if _is_deflated(data):
        # pydicom inflates the whole file in memory before we could check any size: a zip bomb.
        raise ImageDecodeError("Deflate-compressed DICOM files are not accepted; send the file uncompressed or image-compressed.")
    dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    if "PixelData" not in dataset:
        raise ImageDecodeError("The DICOM file holds no image (no Pixel Data element).")
    dataset.ensure_file_meta()
    if "TransferSyntaxUID" not in dataset.file_meta:
        # Files without the DICOM header predate it and were written implicit VR little endian.
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    rows, columns = header_int(dataset, "Rows", 0), header_int(dataset, "Columns", 0)
    if rows < 1 or columns < 1:
        raise ImageDecodeError("The DICOM header gives no image size (Rows and Columns).")
    check_pixel_count(columns, rows, max_pixels)
    if header_int(dataset, "NumberOfFrames", 1) > 1:
        raise ImageDecodeError("Multi-frame DICOM is not supported; send a single chest radiograph.")
    samples = header_int(dataset, "SamplesPerPixel", 1)
    if samples not in (1, 3):
        raise ImageDecodeError(f"The DICOM header gives {samples} samples per pixel; an image has 1 (grey) or 3 (colour).")
    photometric = header_text(dataset, "PhotometricInterpretation").upper() or "MONOCHROME2"
    _check_display_values(dataset, photometric)
    _check_decoder(dataset)
    if dataset.file_meta.TransferSyntaxUID.is_encapsulated:
        _check_frame_size(dataset, rows, columns, max_pixels)
    pixels = dataset.pixel_array
    if pixels.shape != ((rows, columns) if samples == 1 else (rows, columns, 3)):
        raise ImageDecodeError("The DICOM image does not have the size its header gives.")
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
    if pixels.ndim == 3:
        # ITU-R 601 luma, the weights Pillow's convert("L") uses for colour images.
        values = np.asarray(pixels, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    else:
        values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset)
    grayscale = stretch_to_uint8(values)
    if photometric == "MONOCHROME1":
        # MONOCHROME1 stores bright as low values; radiologists and the model expect bone white.
        grayscale = 255 - grayscale
    return grayscale, read_identity(dataset)


def header_int(dataset: pydicom.Dataset, keyword: str, default: int) -> int:
    """One whole number from the header, `default` when absent or empty; refused otherwise."""
    value = _header_value(dataset, keyword, "a whole number")
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if not number.is_integer():
        raise ImageDecodeError(f"The DICOM header's {dictionary_description(keyword)} is not a whole number.")
    return int(number)


def header_text(dataset: pydicom.Dataset, keyword: str) -> str:
    """A header value as plain text; "" when absent or not readable as text (never raises)."""
    try:
        value = dataset.get(keyword)
        if value is None:
            return ""
        text = "\\".join(str(item) for item in value) if isinstance(value, MultiValue) else str(value)
    except MemoryError:
        raise
    except Exception:  # a value the header's character set or VR cannot express: as good as absent
        return ""
    return CONTROL_CHARACTERS.sub("", text).strip()[:TEXT_LIMIT]


def _header_value(dataset: pydicom.Dataset, keyword: str, kind: str):
    """The single value of `keyword`, None when absent or empty, refused when unreadable or several."""
    label = dictionary_description(keyword)
    try:
        value = dataset.get(keyword)
    except MemoryError:
        raise
    except Exception as error:  # pydicom converts lazily: a bad IS/DS/US value raises here
        raise ImageDecodeError(f"The DICOM header's {label} is not {kind}.") from error
    if isinstance(value, (MultiValue, list, tuple)):
        raise ImageDecodeError(f"The DICOM header's {label} holds several values where one belongs.")
    return None if value is None or (isinstance(value, (str, bytes)) and not value) else value


def _check_display_values(dataset: pydicom.Dataset, photometric: str) -> None:
    """The rescale and window a grey image is displayed with must be numbers, the window at least 1 wide."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = _header_value(dataset, keyword, "a number")
        if value is not None and not _is_finite_number(value):
            raise ImageDecodeError(f"The DICOM header's {dictionary_description(keyword)} is not a number.")
    if photometric == "PALETTE COLOR" and "RedPaletteColorLookupTableDescriptor" not in dataset:
        raise ImageDecodeError("The DICOM image is in palette colour but carries no colour table, so it cannot be shown.")
    if "VOILUTSequence" in dataset or "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return  # a VOI LUT takes precedence over the window, and half a window is ignored
    try:
        center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    except MemoryError:
        raise
    except Exception as error:
        raise ImageDecodeError("The DICOM header's display window (Window Center and Width) is not a number.") from error
    centers = list(center) if isinstance(center, MultiValue) else [center]
    widths = list(width) if isinstance(width, MultiValue) else [width]
    if not all(_is_finite_number(value) for value in [*centers, *widths]):
        raise ImageDecodeError("The DICOM header's display window (Window Center and Width) is not a number.")
    # Only the first window is applied; LINEAR (the default) needs it at least 1 wide, the others above 0.
    linear = header_text(dataset, "VOILUTFunction").upper() in ("", "LINEAR")
    if float(widths[0]) < 1 if linear else float(widths[0]) <= 0:
        raise ImageDecodeError(f"The DICOM header's Window Width is {float(widths[0]):g}; a display window must be at least 1 wide.")


def _check_decoder(dataset: pydicom.Dataset) -> None:
    syntax = dataset.file_meta.TransferSyntaxUID
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        name = syntax.name if syntax.name != syntax else "an unknown format"
        raise ImageDecodeError(f"The DICOM image is compressed with {name}, which this portal cannot read.")


def _check_frame_size(dataset: pydicom.Dataset, rows: int, columns: int, max_pixels: int) -> None:
    """A compressed frame states its own size, and the decoder allocates that, whatever Rows and
    Columns say: read it from the codestream before decoding so a small file cannot claim huge memory."""
    frame = next(generate_frames(dataset.PixelData, number_of_frames=1), b"")
    size = _codestream_size(frame[:65536])
    if size is None:
        return  # not JPEG or JPEG 2000 (RLE decodes to Rows x Columns): nothing to check here
    check_pixel_count(*size, max_pixels)
    if size != (columns, rows):
        raise ImageDecodeError("The DICOM image does not have the size its header gives.")


def _codestream_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG family start-of-frame marker or a JPEG 2000 SIZ marker."""
    siz = frame.find(b"\xff\x4f\xff\x51")
    if siz != -1 and len(frame) >= siz + 24:
        x, y, x0, y0 = (int.from_bytes(frame[siz + at:siz + at + 4], "big") for at in (8, 12, 16, 20))
        return x - x0, y - y0
    at = 2 if frame.startswith(b"\xff\xd8") else None
    while at is not None and at + 9 <= len(frame) and frame[at] == 0xFF:
        marker, length = frame[at + 1], int.from_bytes(frame[at + 2:at + 4], "big")
        # SOF0-SOF15 (but DHT, JPG, DAC) and JPEG-LS SOF55 carry: length, precision, height, width.
        if marker == 0xF7 or (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)):
            return int.from_bytes(frame[at + 7:at + 9], "big"), int.from_bytes(frame[at + 5:at + 7], "big")
        at += 2 + length
    return None


def _is_deflated(data: bytes) -> bool:
    """Whether the file meta group (after the preamble, sized by its group length) names Deflate."""
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        return False
    end = 144 + int.from_bytes(data[140:144], "little")
    return DeflatedExplicitVRLittleEndian.encode() in data[132:end]


def _is_finite_number(value) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError, OverflowError):
        return False
