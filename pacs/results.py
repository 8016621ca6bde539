"""The two DICOM objects a result goes back to the PACS as, in the analysed film's study and a new
series: a Secondary Capture of the film with the coloured heatmap and the result burned in, and a
Structured Report (TID 1500, highdicom) with the finding as a coded concept, the probability, the
threshold, the model version with its validation status, and the analysed image's SOP Instance UID.

Both copy the patient and study from the received instance's header (highdicom does, from the
reference dataset), and take their UIDs from the caller: a send that is retried makes the very same
instances again, so a PACS that stored one before a connection broke sees the same SOPInstanceUID,
never a second copy. No Django here: pacs.sending gathers the facts from the database."""
import copy
import logging
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

# highdicom logs six INFO lines per Secondary Capture it builds ("copy attributes of module ..."):
# the worker's log is for what happened to a result, not how a dataset was put together.
logging.getLogger("highdicom").setLevel(logging.WARNING)

MANUFACTURER = "Chest X-ray portal"
DECISION_SUPPORT = "Decision support, not a diagnosis"
DEMO = "DEMO MODEL · not for clinical use"
# The largest side of the Secondary Capture: a summary to read beside the original film, not a
# copy of it (a 3000 px film in RGB would be 27 MB in the PACS for each result).
SC_MAX_SIDE = 1024
# The portal's viewer colours the map with matplotlib's jet at half opacity (static/portal.js): the same here.
HEATMAP_OPACITY = 0.5

# SNOMED CT: the disease the model looks for, and whether its pattern is found.
COVID_19 = Code("840539006", "SCT", "COVID-19")  # "Disease caused by SARS-CoV-2"; a meaning is at most 64 characters
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("2667000", "SCT", "Absent")
CHEST_X_RAY = Code("399208008", "SCT", "Plain chest X-ray")
# What the model measured has no standard code: the portal's own coding scheme (a "99" prefix is private, PS3.16 8.2).
PROBABILITY = Code("PROB", "99CXRPORTAL", "Probability of a COVID-19 pattern")
THRESHOLD = Code("THRESH", "99CXRPORTAL", "Decision threshold")
NO_UNITS = Code("1", "UCUM", "no units")


@dataclass(frozen=True)
class ResultFacts:
    """What a result says, in the words every portal page uses."""

    positive: bool
    probability: float  # of the positive class, 0..1
    threshold: float
    threshold_origin: str  # "version threshold" or the site's fitted threshold, in words
    version: str  # e.g. "v3"
    validation: str  # the version's validation status, one sentence
    demo: bool

    @property
    def finding(self):
        return "Likely COVID-19 pattern" if self.positive else "No COVID-19 pattern found"


@dataclass(frozen=True)
class ObjectUids:
    """Fixed once per send (pacs.models.ResultSend), so every retry makes the same instances."""

    series: str
    secondary_capture: str
    structured_report: str


def burned_in_lines(facts):
    lines = [f"AI result: {facts.finding} · probability {facts.probability:.0%} ({facts.threshold_origin} {facts.threshold:.0%})",
             f"Model {facts.version} · {facts.validation}", DECISION_SUPPORT]
    return [DEMO, *lines] if facts.demo else lines


def overlay(film, heatmap):
    """The film (uint8, (H, W)) with the grey map (uint8, any size; None: no map) coloured by jet
    over it at half opacity, as RGB uint8, its largest side at most SC_MAX_SIDE. The map is
    coloured at its own size (at most 128 px) and then enlarged: Pillow blends in C."""
    picture = Image.fromarray(film, mode="L")
    scale = SC_MAX_SIDE / max(picture.size)
    if scale < 1:
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.Resampling.LANCZOS)
    picture = picture.convert("RGB")
    if heatmap is not None:
        coloured = (colormaps["jet"](heatmap)[..., :3] * 255).astype(np.uint8)
        picture = Image.blend(picture, Image.fromarray(coloured, mode="RGB").resize(picture.size, Image.Resampling.BILINEAR), HEATMAP_OPACITY)
    return np.asarray(picture)


def burn_in(rgb, lines):
    """The picture with a black band above it holding the lines in white: the text hides no part of the film."""
    width = rgb.shape[1]
    size = max(12, width // 48)
    font = ImageFont.load_default(size=size)
    line_height = round(size * 1.35)
    band = Image.new("RGB", (width, line_height * len(lines) + size), "black")
    draw = ImageDraw.Draw(band)
    for number, line in enumerate(lines):
        # Shrink a line that would not fit the width rather than cut it.
        fitted = font
        while draw.textlength(line, font=fitted) > width - size and fitted.size > 8:
            fitted = ImageFont.load_default(size=fitted.size - 1)
        draw.text((size // 2, size // 2 + number * line_height), line, fill="white", font=fitted)
    return np.concatenate([np.asarray(band), rgb], axis=0)


def secondary_capture(header, film, heatmap, facts, uids):
    """The Secondary Capture (pydicom Dataset) of the film with its heatmap and result burned in."""
    pixels = burn_in(overlay(film, heatmap), burned_in_lines(facts))
    header = reference(header)
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=header, pixel_array=pixels, photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8, coordinate_system=hd.CoordinateSystemNames.PATIENT, patient_orientation=("L", "F"), series_instance_uid=uids.series, series_number=_series_number(header),
        sop_instance_uid=uids.secondary_capture, instance_number=1, manufacturer=MANUFACTURER,
    )
    # highdicom asks for an orientation; the film's own is the only true one (type 2: empty when it had none).
    capture.PatientOrientation = header.get("PatientOrientation", "")
    capture.SeriesDescription = f"AI result (decision support) {facts.version}"
    capture.ImageComments = " / ".join(burned_in_lines(facts))[:10240]
    capture.BurnedInAnnotation = "YES"
    capture.DerivationDescription = f"Heatmap of model {facts.version} over the film {header.SOPInstanceUID}"[:1024]
    return capture


def structured_report(header, facts, uids, *, tracking_uid=None, device_uid=None):
    """The Comprehensive SR (pydicom Dataset) of the result, referencing the analysed image; the
    tracking and device UIDs are new ones unless given.

    highdicom makes both parts: its templates the content tree (TID 1500), and ComprehensiveSR the
    document around it (patient, study, series, evidence, flags), given the tree's root container
    with one of its items. Given the whole tree, ComprehensiveSR deep-copies it, reads it back into
    highdicom's objects and searches it three times, most of the SR's CPU (25 ms in all, 10 ms
    this way, docs/pacs.md), for checks the tree from highdicom's templates passes by construction
    (every instance it references is the evidence; no 3D coordinates). The dataset is the same
    element for element as ComprehensiveSR given the whole tree (tests/pacs/test_results.py builds
    both and compares them). A plain pydicom Dataset: highdicom's own view of the tree (its
    `content`) would hold only the item it was given."""
    header = reference(header)
    root = measurement_report(header, facts, tracking_uid or hd.UID(), device_uid or hd.UID())[0]
    bare_root = pydicom.Dataset()
    for element in root:
        if element.keyword != "ContentSequence":
            bare_root.add(element)
    bare_root.ContentSequence = [root.ContentSequence[0]]
    document = hd.sr.ComprehensiveSR(evidence=[header], content=bare_root, **document_arguments(header, uids))
    document.ContentSequence = root.ContentSequence
    document.SeriesDescription = f"AI result (decision support) {facts.version}"
    return _plain(document)


def document_arguments(header, uids):
    """ComprehensiveSR's arguments besides the evidence and the content."""
    return dict(series_instance_uid=uids.series, series_number=_series_number(header), sop_instance_uid=uids.structured_report,
                instance_number=2, manufacturer=MANUFACTURER, is_complete=True)


def measurement_report(header, facts, tracking_uid, device_uid):
    """The SR's content tree (highdicom's MeasurementReport, TID 1500) for `header` as reference() gives it."""
    algorithm = hd.sr.AlgorithmIdentification(
        name="Chest X-ray portal COVID-19 model", version=facts.version,
        parameters=[f"Validation: {facts.validation}", f"Threshold: {facts.threshold_origin}", DECISION_SUPPORT]
        + ([DEMO] if facts.demo else []),
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier="AI result"),
        finding_type=COVID_19, algorithm_id=algorithm,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(header)],
        measurements=[hd.sr.Measurement(name=PROBABILITY, value=round(facts.probability, 4), unit=NO_UNITS, algorithm_id=algorithm),
                      hd.sr.Measurement(name=THRESHOLD, value=round(facts.threshold, 4), unit=NO_UNITS)],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=COVID_19, value=PRESENT if facts.positive else ABSENT)],
    )
    device = hd.sr.ObserverContext(observer_type=codes.DCM.Device, observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid, name=MANUFACTURER, model_name=f"COVID-19 model {facts.version}"))
    return hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=CHEST_X_RAY, imaging_measurements=[group],
    )


def _plain(document):
    """The document's elements, file meta and preamble in a pydicom Dataset (dicomweb-client writes
    what it sends as a file: without the preamble a PACS keeps and serves a file without one)."""
    plain = pydicom.Dataset(document)
    plain.file_meta, plain.preamble = document.file_meta, document.preamble
    return plain


# The patient and study attributes the new objects copy: type 2 (present, possibly empty) in
# them, while a PACS may leave any of them out of the film's header.
PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                     "ReferringPhysicianName", "StudyID", "AccessionNumber")


def reference(header):
    """A copy of the analysed film's header (no pixels needed) with every attribute the new objects copy present."""
    copied = copy.deepcopy(header)
    for keyword in PATIENT_AND_STUDY:
        if keyword not in copied:
            setattr(copied, keyword, "")
    return copied


def _series_number(header):
    """A series number after the film's own, so the viewer lists the result after it."""
    try:
        return int(header.get("SeriesNumber") or 0) + 900
    except (TypeError, ValueError):
        return 900
