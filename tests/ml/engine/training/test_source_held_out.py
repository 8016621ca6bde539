"""The source-held-out test (issue 7): the films of the named sources are in no split, the model
is measured on them after training, and the record says per source how many films of each class
it had and whether an AUC inside one source exists."""
import csv
import json

import numpy as np
import pytest

from ml.engine import discover_dataset, make_synthetic_dataset
from ml.engine.judge.metrics import evaluate_predictions, source_held_out_record

from tests.shared_data import needs

from ..data.test_data import REAL_DATA, tiny_png_folder, write_manifest

# Per class, the sources of its films in file order: Gamma holds covid films only, Mixed both classes.
ORIGINS = {
    "covid": ["Alpha (Spain)"] * 8 + ["Gamma"] * 4 + ["Mixed (site 1)"] * 2,
    "normal": ["Beta"] * 8 + ["Delta (USA)"] * 4 + ["Mixed (site 2)"] * 2,
}
HELD_OUT = {"covid": {"Gamma": 4, "Mixed": 2}, "normal": {"Mixed": 2}}


def relabel_origins(root):
    """Rewrite the synthetic manifest's origins by ORIGINS (patient ids kept)."""
    with open(root / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    position = {"covid": 0, "normal": 0}
    for row in rows:
        row["origin"] = ORIGINS[row["label"]][position[row["label"]]]
        position[row["label"]] += 1
    write_manifest(root / "manifest.csv", [[r["filename"], r["label"], r["patient_id"], r["origin"]] for r in rows])
    return rows


@pytest.fixture(scope="module")
def held_out_run(tmp_path_factory):
    """A 1-epoch VGG16 at 32 px from random weights, Gamma and Mixed held out: (result, manifest rows)."""
    from ml.engine import TrainConfig, train

    folder = tmp_path_factory.mktemp("held-out")
    data = make_synthetic_dataset(folder / "data", n_per_class=14, image_size=40, seed=4)
    rows = relabel_origins(data)
    config = TrainConfig(backbone="vgg16", image_size=32, weights=None, epochs=1, batch_size=8, n_boot=20, seed=5,
                         held_out_sources=("Gamma", "Mixed"))
    return train(data, folder / "out", config), rows


def test_record_names_the_held_out_sources_and_counts_each_class(held_out_run):
    result, _ = held_out_run
    held = result.record["source_held_out"]
    assert held["sources"] == ["Gamma", "Mixed"]
    assert held["counts"] == {"Gamma": {"covid": 4, "normal": 0}, "Mixed": {"covid": 2, "normal": 2}}
    assert held["n"] == 8 and held["n_positive"] == 6 and held["split"] == "source-held-out"
    for name in ("sensitivity", "specificity", "roc_auc"):
        assert set(held[name]) >= {"value", "ci"}


def test_auc_within_a_source_only_where_it_holds_both_classes(held_out_run):
    result, _ = held_out_run
    held = result.record["source_held_out"]
    assert held["auc_within_a_source"] is True and held["sources_with_both_classes"] == ["Mixed"]
    assert held["per_source"]["Mixed"]["roc_auc"]["value"] is not None
    assert held["per_source"]["Gamma"]["roc_auc"]["value"] is None
    assert held["per_source"]["Gamma"]["sensitivity"]["n"] == 4


def test_held_out_films_are_in_no_split(held_out_run):
    result, rows = held_out_run
    splits = json.loads(result.artifact_path.with_suffix(".splits.json").read_text())
    held_out_files = {r["filename"] for r in rows if r["origin"].split(" (")[0] in ("Gamma", "Mixed")}
    assert set(splits["held_out"]) == held_out_files and len(held_out_files) == 8
    trained_on = set(splits["train"]) | set(splits["val"]) | set(splits["test"])
    assert not trained_on & held_out_files
    assert trained_on | held_out_files == {r["filename"] for r in rows}
    counts = result.record["dataset"]["split_counts"]
    assert sum(counts["train"].values()) + sum(counts["val"].values()) + sum(counts["test"].values()) == 28 - 8


def test_record_keeps_the_switch(held_out_run):
    result, _ = held_out_run
    assert result.record["training"]["config"]["held_out_sources"] == ("Gamma", "Mixed")
    assert result.record["dataset"]["held_out"]["sources"] == ["Gamma", "Mixed"]
    json.loads(result.artifact_path.with_suffix(".json").read_text())["source_held_out"]  # kept in the file too


def test_a_source_per_class_is_said_to_measure_telling_sources_apart():
    """The issue's split (held out: one covid source, one normal source): no AUC inside a source."""
    labels = ["covid"] * 5 + ["normal"] * 5
    origins = ["CXNet (Italy)"] * 5 + ["NIH"] * 5
    probabilities = np.array([[p, 1 - p] for p in np.linspace(0.9, 0.1, 10)])
    metrics = evaluate_predictions(probabilities, labels, ["covid", "normal"], "covid", 0.5, origins=origins, n_boot=20)
    held = source_held_out_record(metrics, ["CXNet", "NIH"], {"CXNet": {"covid": 5, "normal": 0}, "NIH": {"covid": 0, "normal": 5}})
    assert held["auc_within_a_source"] is False and held["sources_with_both_classes"] == []
    assert held["roc_auc"]["value"] == 1.0  # perfect, and no evidence of reading lungs
    assert "telling these sources apart" in held["note"] and "CXNet: covid; NIH: normal" in held["note"]
    assert all(figures["roc_auc"]["value"] is None for figures in held["per_source"].values())


# --- the split itself (no training) ---------------------------------------------------------

@pytest.fixture
def two_source_folder(tmp_path):
    root = tiny_png_folder(tmp_path / "data", {"covid": 12, "normal": 12})
    write_manifest(root / "details.csv", [[f"{label}/{label}_{i:03d}.png", label, "", origin]
                                          for label in ("covid", "normal") for i, origin in enumerate(ORIGINS[label][:12])])
    return root


def test_an_unknown_source_is_refused_with_the_sources_there_are(two_source_folder):
    with pytest.raises(ValueError, match=r"“NIH” is not a source of this dataset; its sources are: Alpha; Beta; Delta; Gamma"):
        discover_dataset(two_source_folder, held_out_sources=("NIH",))


def test_a_name_may_be_the_start_of_one_source(two_source_folder):
    assert discover_dataset(two_source_folder, held_out_sources=("Gam", "Del")).held_out_sources == ["Gamma", "Delta"]


def test_holding_out_every_source_of_a_class_is_refused(two_source_folder):
    with pytest.raises(ValueError, match="leaves no covid images to train on"):
        discover_dataset(two_source_folder, held_out_sources=("Alpha", "Gamma"))


def test_a_dataset_without_origins_cannot_hold_out_a_source(tmp_path):
    with pytest.raises(ValueError, match="no source can be held out"):
        discover_dataset(tiny_png_folder(tmp_path / "plain", {"covid": 6, "normal": 6}), held_out_sources=("Gamma",))


def test_held_out_films_leave_a_given_test_folder_too(tmp_path):
    root = tmp_path / "given"
    tiny_png_folder(root / "train", {"covid": 8, "normal": 8})
    tiny_png_folder(root / "test", {"covid": 4, "normal": 4})
    rows = [[f"{split}/{label}/{label}_{i:03d}.png", label, "", "Gamma" if i % 4 == 0 else "Alpha"]
            for split, n in (("train", 8), ("test", 4)) for label in ("covid", "normal") for i in range(n)]
    write_manifest(root / "details.csv", rows)
    dataset = discover_dataset(root, held_out_sources=("Gamma",))
    assert {s.relpath for s in dataset.held_out} == {r[0] for r in rows if r[3] == "Gamma"}
    assert all(s.source == "Alpha" for s in dataset.train + dataset.val + dataset.test)


@pytest.mark.real_data
@needs(REAL_DATA)
def test_the_issues_split_of_the_real_set_holds_out_one_class_per_source():
    """Issue 7's split: train on BIMCV + RSNA, hold out COVID-CXNet + NIH, each of which holds one class only."""
    from ml.engine.data.splits import held_out_counts

    dataset = discover_dataset(REAL_DATA, seed=42, held_out_sources=("COVID-CXNet", "NIH"))
    assert dataset.held_out_sources == ["COVID-CXNet web/literature collection", 'NIH ChestX-ray8 "No Finding"']
    assert held_out_counts(dataset.held_out, dataset.class_names) == {
        "COVID-CXNet web/literature collection": {"covid": 150, "normal": 0}, 'NIH ChestX-ray8 "No Finding"': {"covid": 0, "normal": 150}}
    assert {s.source for s in dataset.train + dataset.val + dataset.test} == {"BIMCV-COVID19+", 'RSNA Pneumonia Challenge "Normal"'}
