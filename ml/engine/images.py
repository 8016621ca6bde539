"""Decode uploaded or stored chest X-rays into one canonical form.

Every image enters the model as a 2-D uint8 grayscale array produced here, at training and at
inference alike, whatever the file was: PNG, JPEG or DICOM. The web process uses this module to
validate uploads, so it must stay free of TensorFlow (and of Django).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_PREAMBLE_LENGTH = 128
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MIN_SIDE = 32


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read; the message is meant for the person who sent them."""


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # uint8, shape (height, width)
    format: str  # "png", "jpeg" or "dicom"

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def detect_format(data: bytes) -> str | None:
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data[DICOM_PREAMBLE_LENGTH:DICOM_PREAMBLE_LENGTH + 4] == b"DICM":
        return "dicom"
    if _looks_like_headerless_dicom(data):
        return "dicom"
    return None


def decode_image_bytes(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE
) -> DecodedImage:
    """Decode the whole image (not just its header) so truncated or corrupt files are caught here."""
    if not data:
        raise ImageDecodeError("The file is empty.")
    kind = detect_format(data)
    if kind is None:
        raise ImageDecodeError("The file is not a PNG, JPEG or DICOM image.")
    pixels = _decode_dicom(data, max_pixels) if kind == "dicom" else _decode_raster(data, kind, max_pixels)
    height, width = pixels.shape
    if min(height, width) < min_side:
        raise ImageDecodeError(
            f"The image is {width}x{height} pixels; a chest X-ray must be at least {min_side} pixels on each side."
        )
    return DecodedImage(pixels=pixels, format=kind)


def load_image_file(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a dataset or stored file from disk; same decoding as an upload."""
    return decode_image_bytes(Path(path).read_bytes(), max_pixels=max_pixels, min_side=1).pixels


def _check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"The image is {width}x{height} pixels, more than the {max_pixels:,} pixels this portal accepts."
        )


def _decode_raster(data: bytes, kind: str, max_pixels: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_pixel_count(image.width, image.height, max_pixels)
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_grayscale_uint8(image)
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"The {kind.upper()} file is damaged or incomplete and cannot be read ({error}).") from error


def _to_grayscale_uint8(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # Deep PNGs often use 10-12 of their 16 bits; stretching to the range present keeps them visible.
        return _stretch_to_uint8(np.asarray(image, dtype=np.float64))
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) / (high - low) * 255.0).astype(np.uint8)


def _looks_like_headerless_dicom(data: bytes) -> bool:
    """Old DICOM files may lack the preamble; they start with a group 0x0008 element, little endian."""
    return len(data) > 8 and data[:2] == b"\x08\x00" and data[3:4] == b"\x00"


def _decode_dicom(data: bytes, max_pixels: int) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    from pydicom.uid import ImplicitVRLittleEndian

    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise ImageDecodeError(f"The DICOM file cannot be read ({error}).") from error
    if "PixelData" not in dataset:
        raise ImageDecodeError("The DICOM file holds no image (no Pixel Data element).")
    if not hasattr(dataset, "file_meta") or "TransferSyntaxUID" not in dataset.file_meta:
        # Files without the DICOM header predate it and were written implicit VR little endian.
        dataset.ensure_file_meta()
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    _check_pixel_count(columns, rows, max_pixels)
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        raise ImageDecodeError("Multi-frame DICOM is not supported; send a single chest radiograph.")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many types for missing codecs and bad data
        raise ImageDecodeError(f"The DICOM pixel data cannot be decoded ({error}).") from error
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("MONOCHROME"):
        values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset)
    else:
        values = np.asarray(Image.fromarray(pixels.astype(np.uint8)).convert("L"))
    grayscale = _stretch_to_uint8(np.asarray(values, dtype=np.float64))
    if photometric == "MONOCHROME1":
        # MONOCHROME1 stores bright as low values; radiologists and the model expect bone white.
        grayscale = 255 - grayscale
    return grayscale
