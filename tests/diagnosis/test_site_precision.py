"""A reduced precision meets each silent site's films before it serves that site: promoting an int8
version queues a check per silent site, the check compares the int8 serving model with Keras on the
films the model read in the site's silent period and records the figures, and the worker serves a
site in int8 only once its check passed (fp32 until then, and after a failure). Real OpenVINO int8
(NNCF) of a tiny trained model; the figures are recomputed here from the two models' outputs."""
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import roles, scan_intake, site_precision, storage
from diagnosis.inference import analyse_scan
from diagnosis.models import AuditEvent, Patient, Scan, Site, SitePrecisionCheck
from ml import model_store, runtime
from ml import services as ml_services
from ml.engine import ServingPredictor, quantise_int8, resize_images
from ml.engine.serve.shifted import MOVED_BY
from ml.models import ServingExport
from ml.services.serving import export_dir_of
from tests.api import token_client
from tests.conftest import make_user, signed_in
from tests.images import chest_like, encode

pytestmark = pytest.mark.django_db

FILMS = 10


def ordinary(seed):
    return chest_like(128, seed=seed)


def glaring(seed):
    """The same anatomy 80 grey levels brighter: a site whose films are unlike the calibration films."""
    return np.clip(chest_like(128, seed=seed).astype(int) + 80, 0, 255).astype(np.uint8)


def make_int8(parent, calibration):
    """An int8 version derived from `parent` as derive_int8 registers one: NNCF quantisation of the
    parent's accepted fp32 export, calibrated on `calibration`. Its own check against Keras is the
    derivation's business (tests/ml/test_int8_derivation.py, minutes); here it is taken as accepted,
    as a worker finds it after that check."""
    fp32 = model_store.export_folder(parent.serving_export.export_path, parent.serving_export.record["files"])
    version = ml_services.register_version(artifact_path=model_store.local(parent.artifact_path),
                                           record={**parent.record, "derived_from": parent.label, "precision": "int8"})
    record = quantise_int8(fp32, export_dir_of(version), calibration, calibrated_on=f"{len(calibration)} films of the test")
    ServingExport.objects.create(version=version, export_path=str(export_dir_of(version)), record=record,
                                 validation={"accepted": True, "runtime": "openvino", "precision": "int8", "reason": "accepted by its derivation"})
    return version


def upload(site, films, seeds):
    scans = scan_intake.submit_scans(actor=site.reader, patient=site.patient,
                                     uploaded_files=[SimpleUploadedFile(f"{seed}.png", encode(films(seed))) for seed in seeds])
    for scan in scans:
        analyse_scan(scan.pk)
    return [Scan.objects.get(pk=scan.pk) for scan in scans]


def silent_site(name, code):
    site = Site.objects.create(name=name, code=code)
    site.reader = make_user(f"dr_{code}", roles.CLINICIANS, site)
    site.patient = Patient.objects.create(site=site, medical_record_number=f"{code}-1", family_name="Okafor", given_name="Ada")
    return site


def recomputed(keras, int8, check):
    """The rule's figures from Keras and the int8 model on the films the check read."""
    batch = resize_images([storage.load_pixels(scan.stored_name) for scan in site_precision.silent_period_scans(check.site)], keras.spec)
    positive = keras.class_names.index(keras.positive_class)
    expected, got = keras.forward(batch)[0][:, positive], int8.forward(batch)[0][:, positive]
    moved = np.abs(expected - got)
    flipped = int(((expected >= keras.threshold) != (got >= keras.threshold)).sum())
    return {"n_films": len(batch), "n_moved": int((moved > MOVED_BY).sum()), "largest_move": float(moved.max()), "n_flipped": flipped,
            "passed": (moved > MOVED_BY).mean() <= 0.01 and flipped / len(batch) <= 0.005}


def test_a_site_is_served_int8_only_once_int8_held_on_its_own_films(settings, tiny_model_artifact, administrator):
    settings.SITE_PRECISION_MIN_FILMS = FILMS
    parent = ml_services.register_version(artifact_path=tiny_model_artifact.artifact_path, record=tiny_model_artifact.record)
    assert ml_services.prepare_serving(parent).accepted
    ml_services.promote_version(parent.pk, reason="test: the fp32 parent", override=True)
    cove, glare, quiet = silent_site("Cove Hospital", "cove"), silent_site("Glare Clinic", "glare"), silent_site("Quiet Cottage", "quiet")
    upload(cove, ordinary, range(FILMS))  # read in the silent period, by the fp32 parent
    upload(glare, glaring, range(FILMS))
    upload(quiet, ordinary, [1, 2])

    int8 = make_int8(parent, [ordinary(seed) for seed in range(FILMS)])
    ml_services.promote_version(int8.pk, reason="test: int8 made active", override=True)
    checks = {check.site.code: check for check in SitePrecisionCheck.objects.filter(version=int8)}
    assert set(checks) == {"cove", "glare", "quiet"} and all(check.status == "queued" for check in checks.values()), "promotion checks every silent site"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SITE_PRECISION_CHECK_STARTED).latest("id").details["sites"] == ["cove", "glare", "quiet"]

    (waiting,) = upload(cove, ordinary, [50])
    assert (waiting.predictions.get().runtime, waiting.predictions.get().precision) == ("openvino", "fp32"), "fp32 until a check passed"

    refused = site_precision.execute_check(checks.pop("quiet").pk)  # what the training worker runs for the job
    assert refused.status == "failed" and refused.failure_reason == (
        "Quiet Cottage has 2 readable films from its silent period; the check needs at least 10, so its scans stay in fp32.")
    assert site_precision.summary(int8, quiet)["served_in"] == "fp32"
    keras, served = ServingPredictor.keras(runtime.artifact_path(int8)), runtime.load_predictor(int8, int8.serving_export)
    for check in checks.values():
        done = site_precision.execute_check(check.pk)
        assert done.status == SitePrecisionCheck.Status.SUCCEEDED, done.failure_reason
        assert (done.precision, done.runtime) == ("int8", "openvino")
        expected = recomputed(keras, served, done)
        assert {key: getattr(done, key) for key in expected} == pytest.approx(expected, abs=1e-6), done.site.code
        checks[done.site.code] = done
    assert checks["cove"].n_films == FILMS + 1, "every film its model read in the silent period, the fp32 answers' too"
    assert checks["cove"].passed and not checks["glare"].passed, "int8 calibrated on Cove's kind of film holds there, not on Glare's bright films"
    assert "moved by more than 0.05" in checks["glare"].reason or "labels flip" in checks["glare"].reason

    (at_cove,) = upload(cove, ordinary, [60])
    (at_glare,) = upload(glare, glaring, [60])
    cove_answer, glare_answer = at_cove.predictions.get(), at_glare.predictions.get()
    assert (cove_answer.runtime, cove_answer.precision, cove_answer.model_version_id) == ("openvino", "int8", int8.pk)
    assert (glare_answer.runtime, glare_answer.precision, glare_answer.model_version_id) == ("openvino", "fp32", int8.pk)
    assert glare_answer.positive_probability == pytest.approx(keras.predict_batch([glaring(60)])[0]["positive_probability"], abs=1e-4), "Glare gets the Keras model's answer"

    api = token_client(administrator)
    report = api.get(reverse("api:site_validation", args=["glare"]), {"version": int8.pk}).json()["precision_check"]
    assert report["served_in"] == "fp32" and report["reduced_precision"] == "int8"
    assert report["check"]["n_films"] == FILMS and report["check"]["passed"] is False and "served in fp32" in report["sentence"]
    assert api.get(reverse("api:site_validation", args=["cove"]), {"version": int8.pk}).json()["precision_check"]["served_in"] == "int8"
    listed = api.get(reverse("api:version_site_precision_checks", args=[int8.pk])).json()["results"]
    assert {row["site"]: (row["status"], row["passed"]) for row in listed} == {"cove": ("succeeded", True), "glare": ("succeeded", False), "quiet": ("failed", None)}
    again = api.post(reverse("api:version_site_precision_checks", args=[int8.pk]), {"site": "glare"}, format="json")
    assert again.status_code == 202 and [row["site"] for row in again.json()] == ["glare"]
    refused = api.post(reverse("api:version_site_precision_checks", args=[parent.pk]), {}, format="json")
    assert refused.status_code == 400 and "no reduced precision" in refused.json()["error"]

    page = signed_in(administrator).get(reverse("diagnosis:site_validation", args=[glare.pk]), {"version": int8.pk}).content.decode()
    assert "Served in <strong>fp32</strong>" in page and f"{checks['glare'].n_moved} (" in page
    overview = signed_in(administrator).get(reverse("diagnosis:site_overview")).content.decode()
    assert overview.count("<td>int8</td>") == 1 and overview.count("fp32 <span class=\"muted\">(reduced precision not passed on its films)") == Site.objects.count() - 1

