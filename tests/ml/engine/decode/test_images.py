"""ml.engine.decode.images and ml.engine.decode.dicom: every file decodes to a 2-D uint8 image or is refused with
one ImageDecodeError sentence; a DICOM also yields its header's identity."""
import struct

import numpy as np
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import MPEG2MPML, DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from ml.engine import DicomIdentity, ImageDecodeError, chest_radiograph_refusal, decode_image_bytes
from tests.images import chest_like, jpeg_bytes, png_bytes
from tests.ml.engine.dicom_files import compressed_dicom, compressed_frame, dicom_dataset, dicom_file, to_bytes

LIBRARY_NAMES = ("pydicom", "pillow", "pil ", "numpy", "pylibjpeg", "openjpeg", "gdcm", "ufunc", "dtype", "traceback")


def refusal(data: bytes) -> str:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image_bytes(data)
    return str(caught.value)


def png_with_bad_idat_checksum() -> bytes:
    data = bytearray(png_bytes())
    start = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[start - 4:start])
    data[start + 4 + length] ^= 0xFF  # first byte of the chunk's CRC; the image data is untouched
    return bytes(data)


@pytest.mark.parametrize("data, kind", [(png_bytes(), "png"), (jpeg_bytes(), "jpeg"), (dicom_file(size=128), "dicom")])
def test_each_format_decodes_to_grayscale_uint8(data, kind):
    image = decode_image_bytes(data)
    assert (image.format, image.pixels.dtype, image.pixels.shape) == (kind, np.uint8, (128, 128))


def test_dicom_pixels_follow_the_source_image():
    pixels = decode_image_bytes(dicom_file(size=128)).pixels.astype(float)
    assert np.corrcoef(pixels.ravel(), chest_like(128).astype(float).ravel())[0, 1] > 0.99


def test_png_with_a_corrupted_idat_checksum_is_refused():
    assert refusal(png_with_bad_idat_checksum()) == "The PNG file is damaged or incomplete and cannot be read."


def test_truncated_png_is_refused():
    assert "damaged or incomplete" in refusal(png_bytes()[:300])


CRAFTED = {
    "window width 0": (dict(WindowCenter=100, WindowWidth=0), "Window Width is 0"),
    "number of frames not a number": (dict(NumberOfFrames=b"abc"), "Number of Frames is not a whole number"),
    "several numbers of frames": (dict(NumberOfFrames=b"1\\2"), "Number of Frames holds several values"),
    "rescale slope not a number": (dict(RescaleSlope=b"x", RescaleIntercept=0), "Rescale Slope is not a number"),
    "columns smaller than the pixel data": (dict(Columns=10), "does not have the size its header gives"),
    "palette colour without a table": (dict(PhotometricInterpretation="PALETTE COLOR"), "carries no colour table"),
    "no image size": (dict(Rows=None), "gives no image size"),
    "window centre not a number": (dict(WindowCenter=b"centre", WindowWidth=400), "display window"),
    "several frames": (dict(NumberOfFrames=2), "Multi-frame DICOM is not supported"),
    "four samples per pixel": (dict(SamplesPerPixel=4), "4 samples per pixel"),
    "pixel data cut short": (dict(PixelData=b"\0" * 100), "DICOM file is damaged"),
}


@pytest.mark.parametrize("header, message", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_dicom_is_refused_with_a_sentence(header, message):
    assert message in refusal(dicom_file(**header))


@pytest.mark.parametrize("data", [png_with_bad_idat_checksum(), jpeg_bytes()[:400], *(dicom_file(**h) for h, _ in CRAFTED.values())])
def test_refusals_never_name_a_library(data):
    sentence = refusal(data)
    assert sentence.endswith(".") and not any(name in sentence.lower() for name in LIBRARY_NAMES)


def test_unknown_compression_is_named_in_dicom_words():
    data = compressed_dicom(twelve_bit_chest(), MPEG2MPML, frame=b"\0\0\1\xb3" * 8)
    assert refusal(data) == "The DICOM image is compressed with MPEG2 Main Profile / Main Level, which this portal cannot read."


def twelve_bit_chest(size=64) -> np.ndarray:
    return chest_like(size).astype(np.uint16) * 16


def test_jpeg_ls_dicom_decodes_like_the_uncompressed_one():
    image = decode_image_bytes(compressed_dicom(twelve_bit_chest(), JPEGLSLossless))
    assert np.array_equal(image.pixels, decode_image_bytes(compressed_dicom(twelve_bit_chest(), RLELossless)).pixels)


def test_jpeg_lossless_dicom_decodes_like_the_uncompressed_one():
    imagecodecs = pytest.importorskip("imagecodecs")  # the only encoder of JPEG Lossless on PyPI we found
    frame = imagecodecs.jpeg8_encode(twelve_bit_chest(), lossless=True, predictor=1, bitspersample=12)
    image = decode_image_bytes(compressed_dicom(twelve_bit_chest(), JPEGLosslessSV1, frame))
    assert np.array_equal(image.pixels, decode_image_bytes(compressed_dicom(twelve_bit_chest(), RLELossless)).pixels)


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEGLosslessSV1])
def test_the_pinned_runtime_plugin_decodes_lossless_jpeg(syntax):
    """pyjpegls and imagecodecs only make test files; in production pylibjpeg-libjpeg decodes them."""
    assert "pylibjpeg" in get_decoder(syntax).available_plugins


def test_png_and_jpeg_carry_no_identity():
    assert decode_image_bytes(png_bytes()).identity is None


def test_dicom_identity_is_read_from_the_header():
    data = dicom_file(
        PatientID="MRN-0042", PatientName="Doe^Jane", PatientBirthDate="19610203", PatientSex="F",
        StudyDate="20260102", StudyTime="101500", AccessionNumber="ACC9", ViewPosition="PA", BodyPartExamined="CHEST",
    )
    assert decode_image_bytes(data).identity == DicomIdentity(
        patient_id="MRN-0042", patient_name="Doe^Jane", patient_birth_date="19610203", patient_sex="F",
        study_date="20260102", study_time="101500", accession_number="ACC9", view_position="PA", modality="DX",
        body_part_examined="CHEST",
    )


def test_absent_identity_fields_are_empty_strings():
    assert decode_image_bytes(dicom_file(Modality=None)).identity == DicomIdentity()


def test_odd_identity_values_become_plain_text():
    identity = decode_image_bytes(dicom_file(PatientID=b"A\x00B\x1b\x07", PatientName=b"X" * 1000, StudyDate=b"not a date")).identity
    assert (identity.patient_id, len(identity.patient_name), identity.study_date) == ("AB", 200, "not a date")


@pytest.mark.parametrize("modality, body_part", [("CR", "CHEST"), ("DX", ""), ("DX", "THORAX"), ("CR", "Chest PA"), ("DX", "LUNGS"), ("DR", "CHEST")])
def test_chest_radiographs_are_readable(modality, body_part):
    assert chest_radiograph_refusal(DicomIdentity(modality=modality, body_part_examined=body_part)) is None


@pytest.mark.parametrize(
    "modality, sentence",
    [
        ("CT", "This DICOM file is a CT scan, not an X-ray; only chest X-rays (CR, DX or DR) can be read."),
        ("MR", "This DICOM file is an MRI scan, not an X-ray; only chest X-rays (CR, DX or DR) can be read."),
        ("ZZ", "This DICOM file is a study of modality ZZ, not an X-ray; only chest X-rays (CR, DX or DR) can be read."),
        ("", "The DICOM file does not say what kind of study it is; only chest X-rays (CR, DX or DR) can be read."),
    ],
)
def test_other_modalities_are_refused_in_plain_words(modality, sentence):
    assert chest_radiograph_refusal(DicomIdentity(modality=modality, body_part_examined="CHEST")) == sentence


def test_a_radiograph_of_another_body_part_is_refused():
    refusal_sentence = chest_radiograph_refusal(DicomIdentity(modality="CR", body_part_examined="KNEE"))
    assert refusal_sentence == "This DICOM file is an X-ray of the knee, not of the chest; only chest X-rays can be read."


def test_a_ct_upload_is_refusable_from_what_the_decoder_returns():
    identity = decode_image_bytes(dicom_file(Modality="CT")).identity
    assert chest_radiograph_refusal(identity).startswith("This DICOM file is a CT scan")


def jpeg_ls_frame_claiming(width: int, height: int) -> bytes:
    """A 64x64 JPEG-LS frame whose start-of-frame marker claims another size."""
    frame = bytearray(compressed_frame(twelve_bit_chest(), JPEGLSLossless))
    sof = frame.index(b"\xff\xf7")
    frame[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(frame)


def test_a_compressed_frame_claiming_a_huge_size_is_refused_before_decoding():
    data = compressed_dicom(twelve_bit_chest(), JPEGLSLossless, frame=jpeg_ls_frame_claiming(60000, 60000))
    assert refusal(data) == "The image is 60000x60000 pixels, more than the 50,000,000 pixels this portal accepts."


def test_a_compressed_frame_of_another_size_than_the_header_is_refused():
    data = compressed_dicom(twelve_bit_chest(), JPEGLSLossless, frame=jpeg_ls_frame_claiming(64, 32))
    assert refusal(data) == "The DICOM image does not have the size its header gives."


def test_a_jpeg_2000_frame_of_another_size_than_the_header_is_refused():
    frame = compressed_frame(chest_like(32).astype(np.uint16), JPEG2000Lossless)
    assert refusal(compressed_dicom(twelve_bit_chest(), JPEG2000Lossless, frame=frame)) == "The DICOM image does not have the size its header gives."


def test_deflated_dicom_is_refused_before_it_is_inflated():
    dataset = dicom_dataset()
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    assert "Deflate-compressed DICOM files are not accepted" in refusal(to_bytes(dataset))
