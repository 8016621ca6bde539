"""A bounded, repeatable fuzz of the decoders: for any bytes, decode_image_bytes returns a valid
image or raises ImageDecodeError, nothing else (anything else would be a 500 for the uploader).

Hypothesis draws odd DICOM header values and random byte mutations of valid PNG, JPEG and DICOM
files. derandomize=True makes every run draw the same cases, so CI is repeatable; the example
counts keep the whole module well under a minute."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from ml.engine import DicomIdentity, ImageDecodeError, chest_radiograph_refusal, decode_image_bytes
from tests.images import jpeg_bytes, png_bytes
from tests.ml.engine.dicom_files import compressed_dicom, dicom_dataset, dicom_file, with_character_set

FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck), max_examples=150)
# Malformed headers make pydicom, Pillow and NumPy warn; the warnings are expected, the exceptions are not.
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def decodes_or_refuses(data: bytes) -> None:
    """The property: a valid image, or ImageDecodeError with a sentence; any other exception fails."""
    try:
        image = decode_image_bytes(data, max_pixels=4_000_000, min_side=1)
    except ImageDecodeError as error:
        assert str(error).endswith(".")
        return
    assert image.pixels.dtype == np.uint8 and image.pixels.ndim == 2 and min(image.pixels.shape) >= 1
    if image.format == "dicom":
        assert all(isinstance(value, str) for value in vars(image.identity).values())
        assert chest_radiograph_refusal(image.identity) is None or chest_radiograph_refusal(image.identity).endswith(".")
    else:
        assert image.identity is None


def ascii_bytes(*typical: str) -> st.SearchStrategy[bytes]:
    """Raw text values: the typical ones, odd numbers, several values, and arbitrary text."""
    odd = ["", " ", "0", "-1", "1.5", "1e308", "-1e308", "nan", "inf", "abc", "1\\2", "0\\0", "65536", "4294967296"]
    text = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=24)
    return st.one_of(st.sampled_from([*typical, *odd]), text).map(lambda value: value.encode("latin-1"))


def unsigned_short() -> st.SearchStrategy[bytes]:
    """US values as raw bytes: small and huge numbers, and values of the wrong length."""
    numbers = st.sampled_from([0, 1, 2, 3, 8, 12, 16, 32, 63, 64, 65, 128, 4096, 65535]) | st.integers(0, 65535)
    return numbers.map(lambda n: n.to_bytes(2, "little")) | st.binary(max_size=6)


PHOTOMETRIC = ["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "HSV", "ARGB", "CMYK"]
HEADER = {
    "Rows": unsigned_short(),
    "Columns": unsigned_short(),
    "BitsAllocated": unsigned_short(),
    "BitsStored": unsigned_short(),
    "HighBit": unsigned_short(),
    "PixelRepresentation": unsigned_short(),
    "SamplesPerPixel": unsigned_short(),
    "PlanarConfiguration": unsigned_short(),
    "PhotometricInterpretation": ascii_bytes(*PHOTOMETRIC),
    "NumberOfFrames": ascii_bytes("1", "2"),
    "WindowCenter": ascii_bytes("2048", "100\\200"),
    "WindowWidth": ascii_bytes("4096", "1", "0.5", "400\\800"),
    "VOILUTFunction": ascii_bytes("LINEAR", "LINEAR_EXACT", "SIGMOID"),
    "RescaleSlope": ascii_bytes("1", "0.5", "0"),
    "RescaleIntercept": ascii_bytes("-1024", "0"),
    "PixelData": st.binary(max_size=9000) | st.integers(0, 8192).map(lambda n: b"\x10\x00" * n),
    "PatientName": st.binary(max_size=70),
    "PatientID": st.binary(max_size=70),
    "PatientBirthDate": ascii_bytes("19610203", "2026"),
    "Modality": ascii_bytes("DX", "CR", "CT", "MR"),
    "BodyPartExamined": ascii_bytes("CHEST", "KNEE"),
}


@st.composite
def odd_headers(draw):
    """Two to six header elements of the valid 64x64 DX file replaced by raw, possibly absurd, values."""
    keys = draw(st.lists(st.sampled_from(sorted(HEADER)), min_size=2, max_size=6, unique=True))
    return {key: draw(HEADER[key]) for key in keys}


CHARACTER_SETS = st.none() | ascii_bytes("ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 87", "GB18030", "ISO_IR 6\\ISO 2022 IR 87")


@settings(FUZZ, max_examples=1000)
@given(odd_headers(), CHARACTER_SETS)
def test_dicom_with_odd_header_values_decodes_or_is_refused(header, character_set):
    data = dicom_file(**header)
    decodes_or_refuses(data if character_set is None else with_character_set(data, character_set))


def base_files() -> dict[str, bytes]:
    twelve_bit = dicom_dataset().pixel_array
    return {
        "png": png_bytes(64),
        "jpeg": jpeg_bytes(64),
        "dicom": dicom_file(),
        "dicom-rle": compressed_dicom(twelve_bit, RLELossless),
        "dicom-jpeg-ls": compressed_dicom(twelve_bit, JPEGLSLossless),
        "dicom-jpeg-2000": compressed_dicom(twelve_bit, JPEG2000Lossless),
    }


BASES = base_files()


@st.composite
def mutated(draw, base: bytes):
    """`base` with a few bytes overwritten, a run inserted or deleted, and maybe the tail cut off."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at + draw(st.integers(0, 16))] = draw(st.binary(max_size=16))
    if draw(st.booleans()):
        data = data[:draw(st.integers(1, len(data)))]
    return bytes(data)


@pytest.mark.parametrize("kind", sorted(BASES))
def test_byte_mutations_decode_or_are_refused(kind):
    @settings(FUZZ, max_examples=300)
    @given(mutated(BASES[kind]))
    def check(data):
        decodes_or_refuses(data)

    check()


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\0" * 128 + b"DICM", b"\x08\x00\x05\x00"]))
def test_arbitrary_bytes_behind_a_magic_number_decode_or_are_refused(body, magic):
    decodes_or_refuses(magic + body)


@settings(FUZZ, max_examples=50)
@given(st.builds(DicomIdentity, **{name: st.text(max_size=20) for name in vars(DicomIdentity())}))
def test_the_chest_check_answers_none_or_a_sentence_for_any_identity(identity):
    answer = chest_radiograph_refusal(identity)
    assert answer is None or (isinstance(answer, str) and answer.endswith("."))
