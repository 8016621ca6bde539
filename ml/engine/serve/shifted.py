"""The reduced-precision check off the training distribution (issue 26).

A reduced precision validated only on films like the training set is not validated for a new
hospital's films, whose contrast and noise differ: a derived int8 model passed the check on the
validation films of its training sources, then changed 3.7% of labels on films from other
hospitals and moved one probability by 0.46. So, besides the validation films, a variant is
compared with the Keras reference on parts that are unlike them:

- the source-held-out films, where a version has them (the caller passes them);
- every validation film re-rendered in each other source's acquisition style
  (`prepare.acquisition.render_in_style`, the counterfactual styles of the shortcut report);
- every validation film at the extremes of what harmonisation has to absorb (`extreme_styles`):
  the darkest grey levels, smallest films, coarsest JPEG and widest black strips of any source,
  and the brightest, largest, uncompressed and borderless.

Every part must pass the rule of `export.reduced_precision_check` (labels flipped at the threshold;
the AUC where the part holds both classes) and a per-film bound: at most MAX_MOVED_FRACTION of its
films may move by more than MOVED_BY in probability. The result names each part, so a refusal says
which part failed and by how much.
"""
from __future__ import annotations

import numpy as np

from ..prepare.acquisition import AcquisitionStyle, measure_styles, render_in_style
from ..prepare.preprocessing import resize_images

MOVED_BY = 0.05
MAX_MOVED_FRACTION = 0.01
VALIDATION_PART = "validation films"


def extreme_styles(styles: dict[str, AcquisitionStyle]) -> dict[str, AcquisitionStyle]:
    """Two styles at the ends of the measured range: each percentile's lowest, the smallest longer
    side, the lowest JPEG quality and the widest strips; then each percentile's highest, the largest
    side, no JPEG and no strips. (Each style's percentiles rise, so the lowest and highest do too.)"""
    if not styles:
        return {}
    values = list(styles.values())
    percentiles = np.array([style.percentiles for style in values])
    qualities = [style.jpeg_quality for style in values if style.jpeg_quality is not None]
    low = AcquisitionStyle(
        source="extreme: dark, small, coarse", classes=(), n=0, longer_side=min(style.longer_side for style in values),
        jpeg_quality=min(qualities) if qualities else None, percentiles=tuple(float(v) for v in percentiles.min(axis=0)),
        border=tuple(float(v) for v in np.max([style.border for style in values], axis=0)),
    )
    high = AcquisitionStyle(
        source="extreme: bright, large, clean", classes=(), n=0, longer_side=max(style.longer_side for style in values),
        jpeg_quality=None, percentiles=tuple(float(v) for v in percentiles.max(axis=0)), border=(0.0, 0.0, 0.0, 0.0),
    )
    return {low.source: low, high.source: high}


def shifted_parts(images, labels, styles: dict[str, AcquisitionStyle] | None, sources=None) -> dict[str, tuple[list, list | None]]:
    """{part name: (films, labels)}: the validation films in each other source's style (a film is
    not re-rendered in its own source's style when `sources` names it), then at the two extremes.
    Without `styles` (no training films to measure them on) they are measured on these films."""
    if not styles:
        styles = measure_styles(list(images), [str(label) for label in (labels or [0] * len(images))], ["these films"] * len(images))
    labels = list(labels) if labels is not None else None
    parts = {}
    for name, style in styles.items():
        chosen = [i for i in range(len(images)) if sources is None or sources[i] != name]
        if chosen:
            parts[f"validation films in {name}'s style"] = (
                [render_in_style(images[i], style) for i in chosen], [labels[i] for i in chosen] if labels is not None else None)
    for name, style in extreme_styles(styles).items():
        parts[f"validation films at harmonisation's {name}"] = ([render_in_style(image, style) for image in images], labels)
    return parts


def per_film_bound(reference: np.ndarray, candidate: np.ndarray, positive: int) -> dict:
    """How many films moved by more than MOVED_BY in the positive class's probability, and whether
    that is within MAX_MOVED_FRACTION."""
    moved = np.abs(reference[:, positive] - candidate[:, positive])
    over = int((moved > MOVED_BY).sum())
    fraction = over / len(moved) if len(moved) else 0.0
    return {"n_films": int(len(moved)), "n_moved": over, "moved_fraction": fraction,
            "largest_move": float(moved.max()) if len(moved) else 0.0, "bound_passed": fraction <= MAX_MOVED_FRACTION}


def judge_part(expected: np.ndarray, got: np.ndarray, labels, positive: int, threshold: float, precision: str, *,
               auc_required: bool) -> dict:
    """The whole rule on one part: reduced_precision_check and the per-film bound."""
    from .export import reduced_precision_check

    two_classes = labels is not None and len(set(np.asarray(labels).astype(int).tolist())) == 2
    check = reduced_precision_check(expected, got, labels if (auc_required or two_classes) else None, positive, threshold, precision,
                                    auc_required=auc_required)
    bound = per_film_bound(expected, got, positive)
    check.update(bound, auc_variant=check.get(f"auc_{precision}"))
    if not bound["bound_passed"]:
        sentence = (f"{bound['n_moved']} of {bound['n_films']} films ({bound['moved_fraction']:.1%}) moved by more than {MOVED_BY} "
                    f"in probability, the largest by {bound['largest_move']:.2f} (allowed {MAX_MOVED_FRACTION:.0%})")
        check["reason"] = sentence if check["passed"] else f"{check['reason']}; {sentence}"
        check["passed"] = False
    return check


def judge_parts(reference, candidate, parts: dict[str, tuple[list, list | None]], spec, positive: int, threshold: float,
                precision: str) -> dict:
    """Compare the candidate predictor with the reference (both ServingPredictor) on every part:
    {"passed", "parts": {name: check}, "failed_parts": [...], "reason"}."""
    checks = {}
    for name, (images, labels) in parts.items():
        resized = resize_images(images, spec)
        expected, _ = reference.forward(resized)
        got, _ = candidate.forward(resized)
        checks[name] = {"n_images": len(images), **judge_part(expected, got, labels, positive, threshold, precision, auc_required=False)}
    failed = [name for name, check in checks.items() if not check["passed"]]
    reason = "; ".join(f"on the {name}: {checks[name]['reason']}" for name in failed)
    return {"passed": not failed, "parts": checks, "failed_parts": failed,
            "reason": reason or f"labels, AUC and every film's probability kept on {len(checks)} shifted part{'s' * (len(checks) != 1)}"}


def add_shifted_parts(check: dict, reference, candidate, parts, spec, positive: int, threshold: float, precision: str) -> dict:
    """Extend a validation-films check (judge_part's) with the shifted parts; a failure on any part
    refuses the variant and the reason names the part."""
    check["parts"] = {VALIDATION_PART: {key: value for key, value in check.items() if key != "parts"}}
    check["failed_parts"] = [] if check["passed"] else [VALIDATION_PART]
    if not parts:
        return check
    shifted = judge_parts(reference, candidate, parts, spec, positive, threshold, precision)
    check["parts"].update(shifted["parts"])
    check["failed_parts"] += shifted["failed_parts"]
    if not check["passed"]:
        check["reason"] = f"on the {VALIDATION_PART}: {check['reason']}"
        if shifted["failed_parts"]:
            check["reason"] += "; " + shifted["reason"]
    elif not shifted["passed"]:
        check["passed"], check["reason"] = False, shifted["reason"]
    else:
        check["reason"] = f"{check['reason']}; {shifted['reason']}"
    return check


def sources_of(data_dir, relpaths) -> list[str]:
    """Each film's source (data.samples.source_name of its manifest origin; "unknown" without one)."""
    from pathlib import Path

    from ..data.samples import find_manifest, read_manifest, source_name

    manifest = find_manifest(Path(data_dir))
    rows = read_manifest(manifest) if manifest else {}
    return [source_name(rows.get(relpath, {}).get("origin", "")) for relpath in relpaths]


def training_styles(data_dir, train_relpaths, per_source: int = 60) -> dict[str, AcquisitionStyle]:
    """Each source's acquisition style, measured on up to `per_source` of its training films (the
    class is the film's folder), as the shortcut report measures them."""
    from pathlib import Path

    from ..prepare.acquisition import styles_from_files

    chosen: dict[str, list[str]] = {}
    for relpath, source in zip(train_relpaths, sources_of(data_dir, train_relpaths)):
        members = chosen.setdefault(source, [])
        if len(members) < per_source:
            members.append(relpath)
    pairs = [(relpath, source) for source, members in chosen.items() for relpath in members]
    return styles_from_files([Path(data_dir) / relpath for relpath, _ in pairs], [Path(relpath).parent.name for relpath, _ in pairs],
                             [source for _, source in pairs])
