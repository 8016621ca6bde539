"""Finding the images (ml.engine.data.samples) and splitting them honestly (ml.engine.data.splits)."""
import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ml.engine import make_synthetic_dataset
from ml.engine.data.samples import Sample, evaluation_samples, find_manifest, source_name
from ml.engine.data.splits import content_fingerprint, discover_dataset, grouped_stratified_split

from tests.shared_data import SHARED_DATA, needs

from ..conftest import write_png

REAL_DATA = SHARED_DATA / "cxr-dev"


def tiny_png_folder(root: Path, counts: dict) -> Path:
    for label, n in counts.items():
        for i in range(n):
            write_png(root / label / f"{label}_{i:03d}.png", np.full((8, 8), i % 256, np.uint8))
    return root


def write_manifest(path: Path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label", "patient_id", "origin"])
        writer.writerows(rows)


def assert_patients_in_one_split(dataset):
    where = {}
    for split in ("train", "val", "test"):
        for sample in dataset.split(split):
            if sample.patient_id:
                assert where.setdefault(sample.patient_id, split) == split, f"{sample.patient_id} is in {where[sample.patient_id]} and {split}"
    return where


@pytest.fixture(scope="module")
def patients_folder(tmp_path_factory):
    """120 covid + 80 normal images; patients hold 1 to 5 images; a quarter have no patient id."""
    root = tiny_png_folder(tmp_path_factory.mktemp("patients") / "data", {"covid": 120, "normal": 80})
    rng = np.random.default_rng(0)
    rows, patient = [], 0
    for label, n in (("covid", 120), ("normal", 80)):
        i = 0
        while i < n:
            size = int(rng.integers(1, 6))
            patient += 1
            for j in range(i, min(n, i + size)):
                pid = "" if patient % 4 == 0 else f"P{patient:03d}"
                rows.append([f"{label}/{label}_{j:03d}.png", label, pid, "site-a" if j % 2 else "site-b (x)"])
            i += size
    write_manifest(root / "details.csv", rows)
    return root


@pytest.fixture(scope="module")
def splits_of_five_seeds(patients_folder):
    return [discover_dataset(patients_folder, seed=seed) for seed in range(5)]


def test_details_csv_is_found_and_read_as_patient_ids(splits_of_five_seeds):
    for dataset in splits_of_five_seeds:
        assert dataset.grouped_by_patient and dataset.manifest.name == "details.csv"


def test_patient_grouped_split_never_puts_a_patient_in_two_splits(splits_of_five_seeds):
    for dataset in splits_of_five_seeds:
        where = assert_patients_in_one_split(dataset)
        assert len(set(where.values())) == 3


def test_split_keeps_every_image(splits_of_five_seeds):
    for dataset in splits_of_five_seeds:
        assert sum(sum(c.values()) for c in dataset.split_counts().values()) == 200


def test_split_is_stratified_by_class(splits_of_five_seeds):
    # each held-out split has about 15% of each class: 18 of 120 covid, 12 of 80 normal
    for dataset in splits_of_five_seeds:
        counts = dataset.split_counts()
        for split in ("val", "test"):
            assert abs(counts[split]["covid"] - 18) <= 5 and abs(counts[split]["normal"] - 12) <= 5


@pytest.fixture
def train_test_folder(tmp_path):
    root = tmp_path / "data"
    tiny_png_folder(root / "train", {"normal": 30, "covid": 30})
    tiny_png_folder(root / "test", {"normal": 5, "covid": 5})
    rows = [[f"train/{label}/{label}_{i:03d}.png", label, f"{label}-{i // 3}", ""] for label in ("covid", "normal") for i in range(30)]
    write_manifest(root / "manifest.csv", rows)
    return root


def test_train_test_layout_is_recognised(train_test_folder):
    assert discover_dataset(train_test_folder, val_fraction=0.2, seed=3).layout == "train-test"


def test_class_names_are_the_sorted_folder_names(train_test_folder):
    # sorted folder names = the model's output order
    assert discover_dataset(train_test_folder, val_fraction=0.2, seed=3).class_names == ["covid", "normal"]


def test_train_test_layout_keeps_the_given_test_split(train_test_folder):
    dataset = discover_dataset(train_test_folder, val_fraction=0.2, seed=3)
    assert {s.relpath.split("/")[0] for s in dataset.test} == {"test"}
    assert {s.relpath.split("/")[0] for s in dataset.train + dataset.val} == {"train"}


def test_train_test_layout_carves_validation_from_train_by_patient(train_test_folder):
    dataset = discover_dataset(train_test_folder, val_fraction=0.2, seed=3)
    assert_patients_in_one_split(dataset)
    assert dataset.split_counts()["val"] == {"covid": 6, "normal": 6}


def test_manifest_without_patient_or_origin_columns_is_ignored(tmp_path):
    root = tiny_png_folder(tmp_path / "data", {"a": 10, "b": 10})
    (root / "manifest.csv").write_text("filename,label,source_repo\na/a_000.png,a,x\n")
    assert find_manifest(root) is None


def test_manifest_with_patient_ids_is_found(tmp_path):
    root = tiny_png_folder(tmp_path / "data", {"a": 10, "b": 10})
    (root / "details.csv").write_text("filename,label,patient_id\na/a_000.png,a,P1\n")
    assert find_manifest(root).name == "details.csv"


def test_split_of_a_tiny_folder_keeps_every_class_in_every_split(tmp_path):
    root = tiny_png_folder(tmp_path / "data", {"covid": 6, "normal": 6})
    counts = discover_dataset(root).split_counts()
    assert all(counts[split][c] >= 1 for split in ("train", "val", "test") for c in ("covid", "normal"))


def test_a_folder_of_one_class_is_refused(tmp_path):
    with pytest.raises(ValueError):
        discover_dataset(tiny_png_folder(tmp_path / "one", {"covid": 5}))


def test_grouped_split_assigns_mixed_label_patients_whole():
    samples = [Sample(Path(f"/x/{i}"), f"{label}/{i}.png", label, "P1" if i < 4 else "") for i, label in
               enumerate(["covid", "normal", "covid", "covid"] + ["normal"] * 20 + ["covid"] * 20)]
    parts = grouped_stratified_split(samples, {"val": 0.2, "test": 0.2}, seed=1)
    holders = [name for name, members in parts.items() if any(s.patient_id == "P1" for s in members)]
    assert len(holders) == 1 and sum(s.patient_id == "P1" for s in parts[holders[0]]) == 4


def test_fingerprint_does_not_depend_on_location(tmp_path):
    a = tiny_png_folder(tmp_path / "a", {"covid": 3, "normal": 3})
    b = tiny_png_folder(tmp_path / "b", {"covid": 3, "normal": 3})
    assert content_fingerprint(evaluation_samples(a)[0]) == content_fingerprint(evaluation_samples(b)[0])


def test_fingerprint_changes_with_content(tmp_path):
    folder = tiny_png_folder(tmp_path / "a", {"covid": 3, "normal": 3})
    before = content_fingerprint(evaluation_samples(folder)[0])
    write_png(folder / "normal" / "normal_000.png", np.full((8, 8), 77, np.uint8))
    assert content_fingerprint(evaluation_samples(folder)[0]) != before


@pytest.fixture
def synthetic_dataset(tmp_path):
    return discover_dataset(make_synthetic_dataset(tmp_path / "syn", n_per_class=10, image_size=64, seed=0))


def test_synthetic_dataset_is_marked_synthetic(synthetic_dataset):
    assert synthetic_dataset.synthetic


def test_a_plain_folder_is_not_marked_synthetic(tmp_path):
    assert not discover_dataset(tiny_png_folder(tmp_path / "plain", {"covid": 6, "normal": 6})).synthetic


def test_synthetic_dataset_has_both_classes_in_equal_numbers(synthetic_dataset):
    dataset = synthetic_dataset
    assert Counter(s.label for s in dataset.train + dataset.val + dataset.test) == {"covid": 10, "normal": 10}


def test_synthetic_dataset_has_a_patient_manifest(synthetic_dataset):
    assert synthetic_dataset.grouped_by_patient
    assert_patients_in_one_split(synthetic_dataset)


@pytest.mark.real_data
@needs(REAL_DATA)
def test_real_dataset_split_is_grouped_by_patient_and_stratified():
    dataset = discover_dataset(REAL_DATA, seed=42)
    assert dataset.class_names == ["covid", "normal"] and dataset.grouped_by_patient
    assert_patients_in_one_split(dataset)
    counts = dataset.split_counts()
    assert counts["test"]["covid"] == counts["test"]["normal"] == 142
    assert {s.origin.split(" (")[0] for s in dataset.test} >= {"BIMCV-COVID19+", "COVID-CXNet web/literature collection"}


def test_source_name_drops_the_detail_in_brackets():
    assert source_name('RSNA Pneumonia Challenge "Normal" (NIH CC, USA) via C19RD') == 'RSNA Pneumonia Challenge "Normal"'
