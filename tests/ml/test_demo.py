"""The demo model a fresh install starts with is trained the one way every model is: as a
training job (a row with its history), run in the setup process."""
import logging

import pytest

from ml import demo
from ml.models import ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)  # the job's heartbeat thread has its own connection


def test_the_demo_model_is_trained_as_a_job_and_made_active(monkeypatch, settings, tmp_path, caplog):
    monkeypatch.setattr(demo, "DEMO_DATASET", {"n_per_class": 12, "image_size": 96, "seed": 7})  # a smaller set, same code
    settings.DATASETS_ROOT = tmp_path
    settings.ML_EVALUATION_SET = ""
    caplog.set_level(logging.INFO)  # the console's (root) handler, as `make run` has it
    lines = []
    version = demo.ensure_demo_model(progress=lines.append)
    job = TrainingJob.objects.get()
    assert version.training_job == job and job.status == TrainingJob.Status.SUCCEEDED and job.attempts == 1
    assert job.parameters["preset"] == "demo" and job.history
    assert version.status == ModelVersion.Status.ACTIVE and version.trained_on_synthetic_data
    assert any(line.startswith("  epoch 1/") for line in lines)
    # Said once: setup prints each epoch, so the engine's own epoch lines stay off the console, and
    # the job's log tail (the training page) still has them.
    assert not [record for record in caplog.records if record.name.startswith("ml.") and "epoch 1/" in record.getMessage()]
    assert "epoch 1/" in job.log_tail
    assert demo.ensure_demo_model(progress=lines.append) is None, "a second setup trains nothing"
