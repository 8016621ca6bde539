"""Decode uploaded or stored chest X-rays into one canonical form.

Every image enters the model as a 2-D uint8 grayscale array produced here, at training and at
inference alike, whatever the file was: PNG, JPEG or DICOM (DICOM itself lives in `ml.engine.decode.dicom`).
The web process uses this module to validate uploads, so it must stay free of TensorFlow (and of
Django).

Every failure is an `ImageDecodeError` whose message is one sentence for the clinician who sent
the file: `decode_image_bytes` is the boundary where whatever Pillow, pydicom or NumPy raise on
malformed input becomes that error, so no other exception escapes for bad bytes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .pixels import ImageDecodeError, check_pixel_count, stretch_to_uint8

if TYPE_CHECKING:
    from .dicom import DicomIdentity

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_PREAMBLE_LENGTH = 128
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MIN_SIDE = 32
DAMAGED = {
    "png": "The PNG file is damaged or incomplete and cannot be read.",
    "jpeg": "The JPEG file is damaged or incomplete and cannot be read.",
    "dicom": "The DICOM file is damaged or incomplete, or its header contradicts its image, and it cannot be read.",
}

# A truncated upload must be refused, never padded with grey and read as a chest.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # uint8, shape (height, width)
    format: str  # "png", "jpeg" or "dicom"
    identity: DicomIdentity | None = None  # what a DICOM header says (patient, study, modality); None otherwise

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
    """Decode the whole image (not just its header) so truncated or corrupt files are caught here.

    Raises ImageDecodeError and nothing else for any bytes (MemoryError aside: that is the
    server's trouble, not the file's, and must not be reported as a damaged file)."""
    if not data:
        raise ImageDecodeError("The file is empty.")
    kind = detect_format(data)
    if kind is None:
        raise ImageDecodeError("The file is not a PNG, JPEG or DICOM image.")
    identity = None
    try:
        if kind == "dicom":
            from .dicom import decode_dicom  # pydicom loads only when a DICOM arrives

            pixels, identity = decode_dicom(data, max_pixels)
        else:
            pixels = _decode_raster(data, max_pixels)
    except (ImageDecodeError, MemoryError):
        raise
    except Exception as error:  # the decoders raise many types on malformed input; all mean "damaged"
        raise ImageDecodeError(DAMAGED[kind]) from error
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ImageDecodeError(DAMAGED[kind])
    height, width = pixels.shape
    if min(height, width) < min_side:
        raise ImageDecodeError(
            f"The image is {width}x{height} pixels; a chest X-ray must be at least {min_side} pixels on each side."
        )
    return DecodedImage(pixels=pixels, format=kind, identity=identity)


def load_image_file(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a dataset or stored file from disk; same decoding as an upload."""
    return decode_image_bytes(Path(path).read_bytes(), max_pixels=max_pixels, min_side=1).pixels


def _decode_raster(data: bytes, max_pixels: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        check_pixel_count(image.width, image.height, max_pixels)
        # Loading a PNG skips the checksums of its image chunks; verify() reads them all, so a
        # corrupted PNG is refused rather than shown with wrong pixels. verify() spends the image.
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return _to_grayscale_uint8(ImageOps.exif_transpose(image))


def _to_grayscale_uint8(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # Deep PNGs often use 10-12 of their 16 bits; stretching to the range present keeps them visible.
        return stretch_to_uint8(np.asarray(image, dtype=np.float64))
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _looks_like_headerless_dicom(data: bytes) -> bool:
    """Old DICOM files may lack the preamble; they start with a group 0x0008 element, little endian."""
    return len(data) > 8 and data[:2] == b"\x08\x00" and data[3:4] == b"\x00"
