"""The shortcut report: does a trained model read the lungs, or the hospital the film came from?

    report = shortcut_report(predictor, images, labels, sources, styles=styles)

`images` are uint8 (H, W) films at their stored size, `labels` their true classes, `sources` their
source names (evaluate.source_name of the manifest origin). Everything goes through the model's
own `Predictor` (predict_proba and gradcam), the path the portal serves. Four parts, each with
its n, overall and per source:

- occlusion: ROC AUC on the films as they are, with the lung fields blanked (a model that reads
  lungs falls towards 0.5) and with everything but the lung fields blanked (it should keep most of
  its AUC). Blanked means filled with a fixed mid grey: a fill taken from the film (its mean)
  would carry what was blanked, a bright corner marker for one, into the fill. Per source, an AUC exists
  only where a source holds both classes; the mean positive probability is given for every source
  so a reader sees where a single-class source's films move.
- counterfactual acquisition: each film re-rendered in the style of every source that holds only
  the other class (acquisition.render_in_style); the share of renderings whose label at the
  stored threshold differs from the film's own.
- heat outside the lungs: the share of Grad-CAM heat outside the lung mask, beside the share of
  the film's area outside it (what heat spread evenly would give).
- calibration: ECE, sensitivity and specificity at the stored threshold, beside the record's
  internal test figures.

Lung masks come from ml.engine.prepare.lungs; films whose mask is the fallback guess are counted
(`masks.fallback`), and the occlusion and heat figures are also given on segmented films only.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..prepare.acquisition import AcquisitionStyle, render_in_style
from ..prepare.lungs import lung_fields
from .metrics import auc_with_ci, calibration, proportion


NEUTRAL_GREY = 128


def occlude(image: np.ndarray, mask: np.ndarray, fill: int = NEUTRAL_GREY) -> np.ndarray:
    """The film with `mask` set to `fill`."""
    out = image.copy()
    out[mask] = fill
    return out


def _auc(is_positive, scores, n_boot, seed) -> dict:
    # Occlusion can leave the model nothing to tell films apart, and then its float32 outputs for
    # equal inputs still differ in the 7th digit (reductions ordered by position in the batch, which
    # varies with the CPU's vector width): those are ties, not a ranking. Six significant digits.
    scores = np.array([float(f"{score:.6g}") for score in np.asarray(scores, dtype=np.float64)])
    item = auc_with_ci(is_positive, scores, n_boot=n_boot, seed=seed)
    return {"value": item["value"], "ci": item["ci"], "n": int(len(scores)),
            "n_positive": int(np.sum(is_positive))}


def _groups(sources) -> dict[str, np.ndarray]:
    names = sorted(set(sources))
    return {name: np.array([i for i, s in enumerate(sources) if s == name]) for name in names}


def occlusion_part(p_variants: dict, is_positive, sources, fallback, *, n_boot, seed) -> dict:
    def figures(index):
        return {name: {**_auc(is_positive[index], p[index], n_boot, seed), "mean_positive_probability": float(p[index].mean())}
                for name, p in p_variants.items()}

    everything = np.arange(len(is_positive))
    return {
        "fill": f"grey {NEUTRAL_GREY}",
        "overall": figures(everything),
        "segmented_only": figures(everything[~fallback]) if (~fallback).any() else None,
        "per_source": {name: figures(index) for name, index in _groups(sources).items()},
    }


def counterfactual_part(predictor, images, labels, sources, styles: dict[str, AcquisitionStyle], own_labels) -> dict:
    """Render each film in the style of every source whose films all carry another class."""
    renders, owners, targets = [], [], []
    for i, (image, label) in enumerate(zip(images, labels)):
        for style in styles.values():
            if label not in style.classes:
                renders.append(render_in_style(image, style))
                owners.append(i)
                targets.append(style.source)
    if not renders:
        return {"n": 0, "note": "no source holds only the other class: no counterfactual style"}
    new_labels = [r["label"] for r in predictor.predict(renders)]
    flipped = np.array([new != own_labels[i] for i, new in zip(owners, new_labels)])
    owners, targets = np.array(owners), np.array(targets)

    def rate(selected):
        return proportion(int(flipped[selected].sum()), int(selected.sum()))

    return {
        "styles": {name: style.to_dict() for name, style in styles.items()},
        "flip_rate": rate(np.ones(len(flipped), dtype=bool)),
        "by_target_style": {name: rate(targets == name) for name in sorted(set(targets))},
        "by_film_source": {name: rate(np.isin(owners, index)) for name, index in _groups(sources).items()},
        "by_film_label": {name: rate(np.isin(owners, [i for i, l in enumerate(labels) if l == name]))
                          for name in sorted(set(labels))},
    }


def heat_part(predictor, images, masks, sources, fallback, limit) -> dict:
    chosen = range(len(images))
    if limit is not None and limit < len(images):  # evenly spread, so every source keeps a share
        chosen = np.unique(np.linspace(0, len(images) - 1, limit).round().astype(int)).tolist()
    if not len(chosen):
        return {"n": 0, "n_gradcam": 0, "note": "Grad-CAM not computed (gradcam_limit 0)"}
    rows = []
    for i in chosen:
        heat = predictor.gradcam(images[i])
        total = float(heat.sum())
        if total > 0:
            rows.append((i, float(heat[~masks[i]].sum()) / total, float((~masks[i]).mean())))
    if not rows:
        return {"n": 0, "n_gradcam": len(chosen), "note": "every heatmap was empty"}

    def summary(selected):
        if not selected:
            return None
        return {"mean_share_outside": float(np.mean([r[1] for r in selected])),
                "mean_area_outside": float(np.mean([r[2] for r in selected])), "n": len(selected)}

    return {
        "n_gradcam": len(chosen), "n_empty_heatmaps": len(chosen) - len(rows),
        **summary(rows),
        "segmented_only": summary([r for r in rows if not fallback[r[0]]]),
        "per_source": {name: summary([r for r in rows if sources[r[0]] == name]) for name in sorted(set(sources))},
    }


def calibration_part(p_positive, is_positive, predicted_positive, sources, record: dict) -> dict:
    def figures(index):
        truth, said = is_positive[index], predicted_positive[index]
        return {
            "n": int(len(index)),
            "ece": calibration(truth, p_positive[index])["ece"],
            "sensitivity": proportion(int((truth & said).sum()), int(truth.sum())),
            "specificity": proportion(int((~truth & ~said).sum()), int((~truth).sum())),
        }

    internal = record.get("metrics") or {}
    return {
        "overall": figures(np.arange(len(is_positive))),
        "per_source": {name: figures(index) for name, index in _groups(sources).items()},
        "internal_test": {
            "n": internal.get("n"),
            "ece": (internal.get("calibration") or {}).get("ece"),
            "sensitivity": (internal.get("sensitivity") or {}).get("value"),
            "specificity": (internal.get("specificity") or {}).get("value"),
            "roc_auc": (internal.get("roc_auc") or {}).get("value"),
        },
    }


def shortcut_report(predictor, images, labels, sources, *, styles: dict[str, AcquisitionStyle] | None = None,
                    gradcam_limit: int | None = None, n_boot: int = 500, seed: int = 0) -> dict:
    """The four parts above as plain data. `styles` (acquisition.measure_styles /
    styles_from_files, ideally from the training films) drives the counterfactual part; without
    it the styles are measured from these films, without JPEG quality."""
    from ..prepare.acquisition import measure_styles

    if not (len(images) == len(labels) == len(sources)) or len(images) == 0:
        raise ValueError("The shortcut report needs one label and one source per film, and at least one film.")
    labels, sources = list(labels), list(sources)
    positive = predictor.positive_class
    is_positive = np.array([label == positive for label in labels])
    fields = [lung_fields(image) for image in images]
    masks = [f.mask for f in fields]
    fallback = np.array([f.fallback for f in fields])
    column = predictor.class_names.index(positive)

    probabilities = predictor.predict_proba(images)
    own = predictor.results(probabilities)
    own_labels = [r["label"] for r in own]
    p_variants = {
        "unoccluded": probabilities[:, column],
        "lungs_blanked": predictor.predict_proba([occlude(im, m) for im, m in zip(images, masks)])[:, column],
        "outside_lungs_blanked": predictor.predict_proba([occlude(im, ~m) for im, m in zip(images, masks)])[:, column],
    }
    if styles is None:
        styles = measure_styles(images, labels, sources)
    predicted_positive = np.array([label == positive for label in own_labels])
    groups = _groups(sources)
    return {
        "n": len(images),
        "positive_class": positive,
        "threshold": predictor.threshold,
        "artifact_sha256": predictor.record.get("sha256"),
        "sources": {name: {"n": int(len(index)), "classes": dict(Counter(labels[i] for i in index))}
                    for name, index in groups.items()},
        "masks": {"n": len(fields), "fallback": int(fallback.sum()),
                  "fallback_by_source": {name: int(fallback[index].sum()) for name, index in groups.items()},
                  "fallback_reasons": sorted({f.reason for f in fields if f.fallback})},
        "occlusion": occlusion_part(p_variants, is_positive, sources, fallback, n_boot=n_boot, seed=seed),
        "counterfactual": counterfactual_part(predictor, images, labels, sources, styles, own_labels),
        "heat_outside_lungs": heat_part(predictor, images, masks, sources, fallback, gradcam_limit),
        "calibration": calibration_part(probabilities[:, column], is_positive, predicted_positive, sources, predictor.record),
    }
