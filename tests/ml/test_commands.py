"""manage.py train / evaluate / predict: the shell's way in, through the same services as the pages."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from ml.engine import make_synthetic_dataset
from ml.models import Evaluation, ModelVersion, Promotion, TrainingJob
from tests.images import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_train_evaluate_and_predict_from_the_command_line(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", n_per_class=8, image_size=96, seed=31)
    evaluation_set = make_synthetic_dataset(tmp_path / "held-out", n_per_class=5, image_size=96, seed=32)

    output = run("train", "--data", str(data), "--epochs", "1", "--image-size", "71", "--weights", "none", "--batch-size", "8", "--activate", "--override-safeguards", "a demo from the command line")
    assert "covid 8, normal 8" in output
    assert "epoch 1/1 · " in output and "val_loss" in output
    assert "DEMO: " in output
    version_id = int(output.strip().splitlines()[-1].removeprefix("version id: "))
    version = ModelVersion.objects.get(pk=version_id)
    job = TrainingJob.objects.get()
    assert version.training_job == job and job.status == TrainingJob.Status.SUCCEEDED and job.created_by is None
    assert job.history and job.parameters["epochs"] == 1 and job.dataset_path == str(data.resolve())
    assert version.status == ModelVersion.Status.ACTIVE and f"Registered and activated {version.label}." in output
    promotion = Promotion.objects.get()
    assert promotion.reason == "a demo from the command line" and promotion.overridden

    report = tmp_path / "evaluation.json"
    output = run("evaluate", "--version", str(version.pk), "--data", str(evaluation_set), "--json", str(report))
    assert "n=10" in output and "ROC AUC" in output and "Sensitivity" in output and "95% CI" in output
    written = json.loads(report.read_text())
    assert written["version"] == version.pk and written["demo"] is True
    assert written["metrics"]["n"] == 10 and 0 <= written["metrics"]["roc_auc"]["value"] <= 1
    evaluation = Evaluation.objects.get(version=version)
    assert evaluation.n_images == 10 and evaluation.dataset_fingerprint == written["metrics"]["dataset_fingerprint"]

    image = tmp_path / "scan.png"
    image.write_bytes(png_bytes(seed=4))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 images could not be read"):
        call_command("predict", "--version", str(version.pk), str(image), str(broken), stdout=out)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["image"] == str(image) and first["version"] == version.pk and first["demo"] is True
    assert first["label"] in version.class_names and sum(first["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert first["threshold"] == pytest.approx(version.threshold)
    assert second["image"] == str(broken) and "not a PNG, JPEG or DICOM" in second["error"]


def test_train_refuses_a_folder_it_cannot_use_before_recording_a_job(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("train", "--data", str(tmp_path / "missing"), "--weights", "none")
    make_synthetic_dataset(tmp_path / "one-class", n_per_class=4, image_size=96, classes=("covid", "normal"))
    for image in (tmp_path / "one-class" / "normal").iterdir():
        image.unlink()
    with pytest.raises(CommandError, match=r"images of one class only \(covid/\)"):
        run("train", "--data", str(tmp_path / "one-class"), "--weights", "none")
    assert not TrainingJob.objects.exists()


def test_evaluate_and_predict_name_a_missing_version():
    with pytest.raises(CommandError, match="Model version 999 does not exist."):
        run("evaluate", "--version", "999", "--data", "x")
    with pytest.raises(CommandError, match="Model version 999 does not exist."):
        run("predict", "--version", "999", "x.png")
