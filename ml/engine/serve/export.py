"""From a trained Keras artifact to a validated serving model (TensorFlow side; run at registration).

    record = export_serving_model("model.keras", "export/")      # export/serving.xml|.bin, cam_weights.npy, export.json
    result = validate_export("export/", "model.keras", images, labels)  # which precision, or why none
    ServingPredictor.openvino("export/", precision=result["precision"])  # in the worker, no TensorFlow
    quantise_int8("export/", "int8/", training_images)            # int8.py: a derived version's int8 export
    validate_int8("int8/", "export/", "model.keras", images, labels)  # int8.py: accepted, or why not

The serving model takes the resized grey batch (uint8 (N, S, S, 1), `preprocessing.resize_images`)
and returns two outputs in ONE forward pass: the class probabilities and the feature map the
head pools. Stage 2 of the preprocessing (`preprocessing.to_model_input`, the TF function the
training pipeline maps) is traced into the graph (`graph`), so OpenVINO runs the very same operations.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..model.artifact import file_sha256, load_artifact, verify_artifact
from ..model.network import backbone_of
from ..prepare.preprocessing import PreprocessingSpec, resize_images
from .graph import head_cam_weights, serving_function
from .shifted import add_shifted_parts, judge_part
from .serving import EXPORT_FORMAT, EXPORT_RECORD, ServingPredictor, bf16_supported, classifier_record, cpu_description

FP32_TOLERANCE = 1e-4
MAX_AUC_DROP = 0.005
MAX_FLIP_FRACTION = 0.005


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def export_serving_model(artifact_path, out_dir, *, expected_sha256: str | None = None) -> dict:
    """Write the two-output serving model as OpenVINO IR (fp32 weights), its CAM weights and
    export.json (what the worker needs, with the sha256 of every file); return that record."""
    import keras
    import openvino as ov
    import tensorflow as tf

    model, record = load_artifact(artifact_path, expected_sha256)
    spec = PreprocessingSpec.from_dict(record["preprocessing"])
    cam = head_cam_weights(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Keras' ExportArchive writes a SavedModel whose variables OpenVINO's TF frontend can resolve
    # (a plain tf.Module around a Keras 3 model leaves VarHandleOps it cannot find).
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = serving_function(model, spec)
    archive.add_endpoint("serve", serve.python_function, input_signature=serve.input_signature)
    saved = out / "savedmodel"
    archive.write_out(str(saved), verbose=False)
    converted = ov.convert_model(str(saved))
    # compress_to_fp16 defaults to True: fp32 weights are what the 1e-4 check is against.
    ov.save_model(converted, str(out / "serving.xml"), compress_to_fp16=False)
    np.save(out / "cam_weights.npy", cam)
    shutil.rmtree(saved)  # the IR is the export; the SavedModel was only its route
    files = {name: file_sha256(out / name) for name in ("serving.xml", "serving.bin", "cam_weights.npy")}
    export = {
        "format": EXPORT_FORMAT, "runtime": "openvino", "files": files,
        "source": {"artifact_file": Path(artifact_path).name, "sha256": record["sha256"]},
        "classifier": classifier_record(record),
        "outputs": {"probabilities": [None, len(record["class_names"])], "features": [None, *map(int, backbone_of(model).output.shape[1:])]},
        "versions": {"openvino": ov.__version__, "tensorflow": tf.__version__},
    }
    write_json(out / EXPORT_RECORD, export)
    return export


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None


def reduced_precision_check(reference: np.ndarray, candidate: np.ndarray, labels, positive: int, threshold: float,
                            precision: str, *, auc_required: bool = True) -> dict:
    """The rule every reduced precision (bf16, int8) must pass against the Keras reference on the
    same images: the AUC may fall by at most MAX_AUC_DROP and at most MAX_FLIP_FRACTION of the
    labels may change at the threshold. No labels, or one class only, means no AUC: refused, unless
    `auc_required` is False (a shifted part of one class: its labels and films are still held)."""
    flips = float(np.mean((reference[:, positive] >= threshold) != (candidate[:, positive] >= threshold)))
    check = {"flip_fraction": flips, "max_abs_difference": float(np.abs(reference - candidate).max())}
    reasons = []
    if labels is None:
        if auc_required:
            reasons.append("no labelled images to measure the AUC on")
    else:
        labels = np.asarray(labels).astype(int)
        auc_keras, auc_candidate = _auc(labels, reference[:, positive]), _auc(labels, candidate[:, positive])
        check["auc_keras"], check[f"auc_{precision}"] = auc_keras, auc_candidate
        if auc_keras is None:
            if auc_required:
                reasons.append("the images hold only one class, so no AUC")
        elif auc_keras - auc_candidate > MAX_AUC_DROP:
            reasons.append(f"AUC fell from {auc_keras:.4f} to {auc_candidate:.4f} (allowed drop {MAX_AUC_DROP})")
    if flips > MAX_FLIP_FRACTION:
        reasons.append(f"{flips:.1%} of labels flip at the threshold {threshold} (allowed {MAX_FLIP_FRACTION:.1%})")
    check["passed"] = not reasons
    check["reason"] = "; ".join(reasons) or "AUC and labels kept"
    return check


def faster_or_refused(check: dict, fast, fp32, batch, precision: str) -> dict:
    """A reduced precision is only worth its error if it is faster than fp32 here: time both on
    the same batch and refuse it otherwise (bf16 without AMX can be 3x slower than fp32)."""
    check["seconds_fp32"], check[f"seconds_{precision}"] = _best_time(fp32, batch), _best_time(fast, batch)
    if check[f"seconds_{precision}"] >= check["seconds_fp32"]:
        check["passed"] = False
        check["reason"] = (f"{precision} kept the AUC and the labels but is not faster here ({check[f'seconds_{precision}']:.3f} s "
                           f"against {check['seconds_fp32']:.3f} s for fp32 on these images)")
    return check


def _best_time(predictor, batch, repeats: int = 3) -> float:
    import time

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.forward(batch)
        times.append(time.perf_counter() - started)
    return min(times)


def validate_export(export_dir, artifact_path, images: list[np.ndarray], labels=None, *,
                    expected_sha256: str | None = None, try_bf16: bool = True, shifted: dict | None = None) -> dict:
    """Compare the OpenVINO export with Keras on `images` (uint8 grey arrays; `labels`: 1 = the
    positive class, 0 = not) and choose the precision the worker may use.

    fp32 must agree within 1e-4 in every probability, else the export is refused (runtime
    "keras"). bf16, only where the CPU computes it natively, must keep the AUC within 0.005,
    flip at most 0.5% of labels at the threshold, move at most 1% of films by more than 0.05, hold
    the same on every `shifted` part (shifted.shifted_parts: {name: (images, labels)}) and be
    faster than fp32 on these images, else fp32. Every refusal says why, and which part failed."""
    verify_artifact(artifact_path, expected_sha256)
    reference = ServingPredictor.keras(artifact_path, expected_sha256=expected_sha256)
    resized = resize_images(images, reference.spec)
    expected, _ = reference.forward(resized)
    result = {"n_images": len(images), "cpu": cpu_description(), "checks": {}}
    try:
        fp32 = ServingPredictor.openvino(export_dir, precision="fp32")
    except Exception as error:  # a broken or tampered export: say so, serve with Keras
        return {**result, "accepted": False, "runtime": "keras", "precision": "fp32", "reason": f"The export cannot be loaded: {error}"}
    if fp32.classifier["class_names"] != reference.class_names:
        return {**result, "accepted": False, "runtime": "keras", "precision": "fp32", "reason": "The export was made from another model (class names differ)."}
    got, _ = fp32.forward(resized)
    worst = float(np.abs(got - expected).max()) if len(images) else 0.0
    passed = worst <= FP32_TOLERANCE
    result["checks"]["fp32"] = {"max_abs_difference": worst, "tolerance": FP32_TOLERANCE, "passed": passed}
    if not passed:
        index = int(np.abs(got - expected).max(axis=1).argmax())
        reason = (f"OpenVINO fp32 differs from Keras by {worst:.2e} in probability on image {index} "
                  f"(tolerance {FP32_TOLERANCE:.0e}): the export is refused and Keras serves this version.")
        return {**result, "accepted": False, "runtime": "keras", "precision": "fp32", "reason": reason}
    precision, reason = "fp32", "OpenVINO fp32 agrees with Keras within 1e-4."
    if not try_bf16:
        reason += " bf16 was not tried."
    elif not bf16_supported():
        reason += " This CPU has no native bf16 (AMX or AVX512-BF16), so fp32."
    else:
        bf16 = ServingPredictor.openvino(export_dir, precision="bf16")
        candidate, _ = bf16.forward(resized)
        positive = reference.class_names.index(reference.positive_class)
        check = judge_part(expected, candidate, labels, positive, reference.threshold, "bf16", auc_required=True)
        add_shifted_parts(check, reference, bf16, shifted, reference.spec, positive, reference.threshold, "bf16")
        if check["passed"]:
            # Without AMX, bf16 convolutions can be slower than fp32 (measured: 3x on AVX512-BF16 alone).
            faster_or_refused(check, bf16, fp32, resized, "bf16")
        result["checks"]["bf16"] = check
        if check["passed"]:
            precision, reason = "bf16", reason + " bf16 kept the AUC, the labels and every film's probability, also off the training distribution, and is faster: bf16 accepted."
        else:
            reason += f" bf16 refused: {check['reason']}; fp32 used."
    return {**result, "accepted": True, "runtime": "openvino", "precision": precision, "reason": reason}


