"""The two objects a result goes back to the PACS as (pacs.results), decoded with pydicom: the
Secondary Capture with the result burned in and the SR with the finding coded, in the film's
study, a new series, the patient copied from the film's header."""
import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from pacs import results, routing
from tests.images import chest_like
from tests.pacs.conftest import radiograph, sr_reading

FACTS = results.ResultFacts(positive=True, probability=0.8734, threshold=0.5, threshold_origin="version threshold",
                            version="v7", validation="not validated on independent sources", demo=False)


@pytest.fixture
def film_header():
    return pydicom.dcmread(io.BytesIO(radiograph(patient_id="MRN-0042", name="OKAFOR^Ada", birth_date="19700101", AccessionNumber="ACC-9",
                                                 SeriesNumber=3)), stop_before_pixels=True)


@pytest.fixture
def uids():
    return results.ObjectUids(generate_uid(), generate_uid(), generate_uid())


def a_heatmap():
    y, x = np.mgrid[0:64, 0:64]
    return (255 * np.exp(-((x - 20) ** 2 + (y - 30) ** 2) / 200)).astype(np.uint8)


def written_and_read(dataset):
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def test_the_secondary_capture_is_the_film_with_its_heatmap_and_result_burned_in_in_the_same_study(film_header, uids):
    film = chest_like(1500, seed=2)
    capture = written_and_read(results.secondary_capture(film_header, film, a_heatmap(), FACTS, uids))
    assert capture.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and capture.SOPInstanceUID == uids.secondary_capture
    assert (capture.StudyInstanceUID, capture.PatientID, str(capture.PatientName), capture.PatientBirthDate, capture.AccessionNumber) == (
        film_header.StudyInstanceUID, "MRN-0042", "OKAFOR^Ada", "19700101", "ACC-9")
    assert capture.SeriesInstanceUID == uids.series != film_header.SeriesInstanceUID and capture.SeriesNumber == 903
    assert capture.BurnedInAnnotation == "YES" and capture.PhotometricInterpretation == "RGB"
    assert capture.ImageComments == ("AI result: Likely COVID-19 pattern · probability 87% (version threshold 50%) / "
                                     "Model v7 · not validated on independent sources / Decision support, not a diagnosis")
    pixels = capture.pixel_array
    band = pixels.shape[0] - 1024 * 1500 // 1500  # the text band above the film, which is shrunk to 1024 px
    assert pixels.shape == (band + 1024, 1024, 3) and band > 40
    assert (pixels[:band] > 200).all(axis=-1).any(), "white text in the band"
    film_part = pixels[band:].astype(int)
    red_over_blue = film_part[..., 0] - film_part[..., 2]
    # jet over the film, as the portal's viewer shows it: red where the map is hot (x 20, y 30 of 64), blue where it is cold.
    assert red_over_blue[470:490, 310:330].mean() > 40 and red_over_blue[:, 900:].mean() < -40


def test_a_demo_model_says_so_on_the_capture(film_header, uids):
    demo = results.ResultFacts(**{**FACTS.__dict__, "demo": True, "positive": False})
    capture = results.secondary_capture(film_header, chest_like(256), None, demo, uids)
    assert capture.ImageComments.startswith("DEMO MODEL · not for clinical use / AI result: No COVID-19 pattern found")


def test_the_sr_codes_the_finding_with_probability_threshold_version_validation_and_the_analysed_image(film_header, uids):
    report = written_and_read(results.structured_report(film_header, FACTS, uids))
    assert report.SOPClassUID == pydicom.uid.ComprehensiveSRStorage and report.SOPInstanceUID == uids.structured_report
    assert report.SeriesInstanceUID == uids.series and report.StudyInstanceUID == film_header.StudyInstanceUID
    assert (report.PatientID, report.AccessionNumber) == ("MRN-0042", "ACC-9")
    reading = sr_reading(report)
    assert reading["finding"] == ("52101004", "Present")
    assert (reading["probability"], reading["threshold"], reading["version"]) == (0.8734, 0.5, "v7")
    assert "Validation: not validated on independent sources" in reading["parameters"]
    assert "Decision support, not a diagnosis" in reading["parameters"]
    assert reading["references"] == {film_header.SOPInstanceUID}


@pytest.mark.parametrize("facts", [FACTS, results.ResultFacts(**{**FACTS.__dict__, "positive": False, "probability": 0.12, "demo": True,
                                                                  "threshold_origin": "site threshold", "threshold": 0.35})])
def test_the_sr_is_element_for_element_the_one_comprehensive_sr_makes_from_the_whole_tree(film_header, uids, facts):
    film_header.Manufacturer, film_header.ManufacturerModelName = "ACME", "CR-1"  # also copied, as contributing equipment
    tracking, device = generate_uid(), generate_uid()
    made = results.structured_report(film_header, facts, uids, tracking_uid=tracking, device_uid=device)
    header = results.reference(film_header)
    whole = hd.sr.ComprehensiveSR(evidence=[header], content=results.measurement_report(header, facts, tracking, device)[0],
                                  **results.document_arguments(header, uids))
    whole.SeriesDescription = f"AI result (decision support) {facts.version}"
    for document in (made, whole):  # the clock is read as each is made
        document.ContentDate = document.InstanceCreationDate = "20261208"
        document.ContentTime = document.InstanceCreationTime = "120000"
        for equipment in document.ContributingEquipmentSequence:
            equipment.ContributionDateTime = "20261208120000"
    assert len(made.ContributingEquipmentSequence) == 2
    assert encoded(made) == encoded(whole)


def encoded(dataset):
    """As dicomweb-client writes what it sends: with the preamble only where the dataset has one."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset)
    return buffer.getvalue()


def test_a_negative_result_is_coded_absent(film_header, uids):
    negative = results.ResultFacts(**{**FACTS.__dict__, "positive": False, "probability": 0.12})
    assert sr_reading(results.structured_report(film_header, negative, uids))["finding"] == ("2667000", "Absent")


def test_a_header_without_birth_date_or_accession_still_makes_both_objects(uids):
    header = pydicom.dcmread(io.BytesIO(radiograph()), stop_before_pixels=True)
    del header.PatientBirthDate
    assert "AccessionNumber" not in header
    report = written_and_read(results.structured_report(header, FACTS, uids))
    assert report.PatientBirthDate == "" and report.AccessionNumber == ""
    assert results.secondary_capture(header, chest_like(128), None, FACTS, uids).AccessionNumber == ""


def test_the_portal_s_own_objects_sent_back_to_it_are_skipped_by_routing(film_header, uids):
    capture = results.secondary_capture(film_header, chest_like(128), None, FACTS, uids)
    report = results.structured_report(film_header, FACTS, uids)
    assert routing.skip_reason(capture).startswith("Not a radiograph")
    assert routing.skip_reason(report) == "A structured report, not an image: nothing to read."
