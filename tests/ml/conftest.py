"""Fixtures for the model lifecycle tests: administrators, dataset folders and registered versions."""
import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from diagnosis import roles
from ml import services
from ml.models import TrainingJob
from tests.conftest import CELERY, PROJECT_ROOT, make_user, start_celery_worker, stop_celery_worker, worker_environment
from tests.images import png_bytes


@pytest.fixture
def admin_client(client, administrator):
    client.force_login(administrator)
    return client


def make_dataset(name, classes, size=96, root=None):
    """A class-folder dataset of small PNG X-ray look-alikes under the datasets folder."""
    folder = Path(root or settings.DATASETS_ROOT) / name
    shutil.rmtree(folder, ignore_errors=True)
    for index, (label, count) in enumerate(classes.items()):
        (folder / label).mkdir(parents=True)
        for number in range(count):
            (folder / label / f"{label}-{number}.png").write_bytes(png_bytes(size, seed=index * 1000 + number))
    return folder


@pytest.fixture
def dataset_folder():
    made = []

    def make(classes, name=None):
        folder = make_dataset(name or f"set-{uuid.uuid4().hex[:6]}", classes)
        made.append(folder)
        return folder

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


CXNET, NIH = "COVID-CXNet web/literature collection", 'NIH ChestX-ray8 "No Finding"'


def held_out_record(*, nih_covid=0):
    """A record's "source_held_out" as ml.engine.training.train writes it, built by the engine's own functions:
    5 covid films of COVID-CXNet and 5 normal ones of NIH, plus `nih_covid` covid films of NIH (with
    them NIH holds both classes and has an AUC of its own)."""
    from ml.engine.data.samples import Sample
    from ml.engine.data.splits import held_out_counts
    from ml.engine.judge.metrics import evaluate_predictions, source_held_out_record

    films = [("covid", f"{CXNET} (Italy)")] * 5 + [("normal", NIH)] * 5 + [("covid", NIH)] * nih_covid
    samples = [Sample(Path(f"{i}.png"), f"{i}.png", label, "", origin) for i, (label, origin) in enumerate(films)]
    p_covid = [0.9 if s.label == "covid" else 0.2 for s in samples]
    p_covid[0] = 0.3  # one covid film missed, so the figures are not all perfect
    metrics = evaluate_predictions([[p, 1 - p] for p in p_covid], [s.label for s in samples], ["covid", "normal"], "covid", 0.5,
                                   origins=[s.origin for s in samples], n_boot=50)
    return source_held_out_record(metrics, [CXNET, NIH], held_out_counts(samples, ["covid", "normal"]))


def engine_like_record(sha256, *, synthetic=False, auc=0.9, backbone="xception", source_held_out=None):
    """The keys of an ml.engine.training.train record that register_version reads, in the engine's shapes."""
    return {
        "sha256": sha256,
        "backbone": backbone,
        "input_size": 71,
        "preprocessing": {"backbone": backbone, "image_size": 71, "normalisation": backbone},
        "class_names": ["covid", "normal"],
        "positive_class": "covid",
        "threshold": 0.5,
        "metrics": {"split": "test", "n": 10, "roc_auc": {"value": auc, "ci": [auc - 0.1, min(1.0, auc + 0.05)]}},
        "evaluation_set": "test split of a stand-in dataset",
        "dataset": {"fingerprint": "f" * 64, "split_counts": {"train": {"covid": 6, "normal": 6}}},
        "synthetic": synthetic,
        **({"source_held_out": source_held_out} if source_held_out else {}),
    }


@pytest.fixture
def make_version():
    """Register a version whose artifact is a small stand-in file (promotion checks its sha256;
    nothing in these tests loads it as a model)."""

    def make(**kwargs):
        data = uuid.uuid4().bytes * 64
        path = Path(settings.MODEL_STORE_DIR) / "stand-ins" / f"{uuid.uuid4().hex}.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        record = engine_like_record(hashlib.sha256(data).hexdigest(), **kwargs)
        path.with_suffix(".json").write_text(json.dumps(record))
        return services.register_version(artifact_path=path, record=record)

    return make


@pytest.fixture
def second_administrator(site_a):
    return make_user("admin_b", roles.ADMINISTRATORS, site_a)


@pytest.fixture
def evaluation_set():
    """The configured evaluation set (ML_EVALUATION_SET defaults to `evaluation` in the datasets
    folder, which the worker shares), present for this test only."""
    from ml.engine import make_synthetic_dataset

    folder = make_synthetic_dataset(Path(settings.DATASETS_ROOT) / "evaluation", n_per_class=6, image_size=96, seed=22)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def learned_model_artifact(tmp_path_factory):
    """A model that has learned the synthetic signal (the demo preset: 40 films per class, 6 epochs,
    about a minute), for checks that need answers away from the threshold: the 2-epoch tiny model
    answers about 0.5 for every film, where any change of precision flips labels."""
    from ml.engine import TrainConfig, make_synthetic_dataset, train

    root = tmp_path_factory.mktemp("learned-model")
    make_synthetic_dataset(root / "data", n_per_class=40, image_size=96, seed=3)
    return train(root / "data", root / "artifact", TrainConfig.demo())


OWN_TRAINING_QUEUE = "training-test-own-worker"


@pytest.fixture
def own_training_worker(monkeypatch, private_storage, transactional_db):
    """A training worker of its own, on a queue of its own (TrainingJob.queue), so a test can kill
    it, or leave a job half done, without touching the shared worker."""
    monkeypatch.setattr(TrainingJob, "queue", OWN_TRAINING_QUEUE)
    subprocess.run([*CELERY, "purge", "-f", "-Q", OWN_TRAINING_QUEUE], env=worker_environment(), cwd=PROJECT_ROOT, capture_output=True, timeout=60)
    process = start_celery_worker(private_storage / f"own-training-worker-{uuid.uuid4().hex[:6]}.log", queues=OWN_TRAINING_QUEUE)
    yield process
    stop_celery_worker(process)
