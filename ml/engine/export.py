"""From a trained Keras artifact to a validated serving model (TensorFlow side; run at registration).

    record = export_serving_model("model.keras", "export/")      # export/serving.xml|.bin, cam_weights.npy, export.json
    result = validate_export("export/", "model.keras", images, labels)  # which precision, or why none
    ServingPredictor.openvino("export/", precision=result["precision"])  # in the worker, no TensorFlow

The serving model takes the resized grey batch (uint8 (N, S, S, 1), `preprocessing.resize_images`)
and returns two outputs in ONE forward pass: the class probabilities and the feature map the
head pools. Stage 2 of the preprocessing (`preprocessing.to_model_input`, the TF function the
training pipeline maps) is traced into the graph, so OpenVINO runs the very same operations.

Why no gradient is needed: the head is pooling -> dropout -> one Dense -> softmax, linear from
the feature map A to the logits. The gradient of (logit_c - mean logit) with respect to A is the
constant dense kernel, so Grad-CAM's channel weight alpha_k,c is the kernel's column, centred
over classes and averaged over positions (`cam_weights`), computed once here. Any other head
(a second Dense, a non-linearity) makes the map inexact: `head_cam_weights` refuses it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .artifact import file_sha256, load_artifact, verify_artifact
from .model import backbone_of
from .preprocessing import PreprocessingSpec, resize_images
from .serving import (EXPORT_FORMAT, EXPORT_RECORD, ServingPredictor, bf16_supported, classifier_record, cpu_description)

FP32_TOLERANCE = 1e-4
MAX_AUC_DROP = 0.005
MAX_FLIP_FRACTION = 0.005


class ServingUnsupported(ValueError):
    """The model's head is not linear in the feature map: its CAM would not equal Grad-CAM."""


def head_cam_weights(model) -> np.ndarray:
    """Grad-CAM channel weights (K, C) of a pooling -> dropout -> Dense -> softmax head.

    GlobalAveragePooling: alpha = kernel centred over classes (the 1/(h*w) scale is removed by
    the normalisation). Flatten: the kernel is (h*w*K, C) and alpha is its mean over positions."""
    import keras

    base = backbone_of(model)
    head = model.layers[model.layers.index(base) + 1:]
    dense = [layer for layer in head if isinstance(layer, keras.layers.Dense)]
    allowed = (keras.layers.GlobalAveragePooling2D, keras.layers.Flatten, keras.layers.Dropout,
               keras.layers.Dense, keras.layers.Activation)
    others = [layer.name for layer in head if not isinstance(layer, allowed)]
    if len(dense) != 1 or others or dense[0].get_config()["activation"] != "linear":
        raise ServingUnsupported(
            f"The head after the backbone ({[layer.name for layer in head]}) is not one linear Dense layer over "
            "pooled features, so the class activation map would not equal Grad-CAM: serve this model with "
            "Predictor.gradcam instead.")
    kernel = np.asarray(dense[0].kernel, dtype=np.float64)
    channels = int(base.output.shape[-1])
    kernel = kernel.reshape(-1, channels, kernel.shape[-1]).mean(axis=0)  # (K, C); no-op for pooling
    return (kernel - kernel.mean(axis=1, keepdims=True)).astype(np.float32)


def serving_function(model, spec: PreprocessingSpec):
    """tf.function: uint8 (N, S, S, 1) -> {"probabilities": (N, C), "features": (N, h, w, K)}."""
    import keras
    import tensorflow as tf

    from .preprocessing import to_model_input

    base = backbone_of(model)
    inner = keras.Model(base.input, base.output)
    head = model.layers[model.layers.index(base) + 1:]
    size = spec.image_size

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 1], tf.uint8, name="image")])
    def serve(image):
        features = inner(to_model_input(image, spec), training=False)
        x = features
        for layer in head:
            x = layer(x, training=False)
        return {"probabilities": tf.cast(x, tf.float32), "features": tf.cast(features, tf.float32)}

    return serve


def _write_json(path: Path, data: dict) -> None:
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
    _write_json(out / EXPORT_RECORD, export)
    return export


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None


def _bf16_check(reference: np.ndarray, candidate: np.ndarray, labels, positive: int, threshold: float) -> dict:
    flips = float(np.mean((reference[:, positive] >= threshold) != (candidate[:, positive] >= threshold)))
    check = {"flip_fraction": flips, "max_abs_difference": float(np.abs(reference - candidate).max())}
    reasons = []
    if labels is None:
        reasons.append("no labelled images to measure the AUC on")
    else:
        labels = np.asarray(labels).astype(int)
        check["auc_keras"], check["auc_bf16"] = _auc(labels, reference[:, positive]), _auc(labels, candidate[:, positive])
        if check["auc_keras"] is None:
            reasons.append("the images hold only one class, so no AUC")
        elif check["auc_keras"] - check["auc_bf16"] > MAX_AUC_DROP:
            reasons.append(f"AUC fell from {check['auc_keras']:.4f} to {check['auc_bf16']:.4f} (allowed drop {MAX_AUC_DROP})")
    if flips > MAX_FLIP_FRACTION:
        reasons.append(f"{flips:.1%} of labels flip at the threshold {threshold} (allowed {MAX_FLIP_FRACTION:.1%})")
    check["passed"] = not reasons
    check["reason"] = "; ".join(reasons) or "AUC and labels kept"
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
                    expected_sha256: str | None = None, try_bf16: bool = True) -> dict:
    """Compare the OpenVINO export with Keras on `images` (uint8 grey arrays; `labels`: 1 = the
    positive class, 0 = not) and choose the precision the worker may use.

    fp32 must agree within 1e-4 in every probability, else the export is refused (runtime
    "keras"). bf16, only where the CPU computes it natively, must keep the AUC within 0.005,
    flip at most 0.5% of labels at the threshold and be faster than fp32 on these images, else
    fp32. Every refusal says why."""
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
        check = _bf16_check(expected, candidate, labels, positive, reference.threshold)
        if check["passed"]:
            # Without AMX, bf16 convolutions can be slower than fp32 (measured: 3x on AVX512-BF16 alone).
            check["seconds_fp32"], check["seconds_bf16"] = _best_time(fp32, resized), _best_time(bf16, resized)
            if check["seconds_bf16"] >= check["seconds_fp32"]:
                check["passed"] = False
                check["reason"] = (f"bf16 kept the AUC and the labels but is not faster here ({check['seconds_bf16']:.3f} s "
                                   f"against {check['seconds_fp32']:.3f} s for fp32 on these images)")
        result["checks"]["bf16"] = check
        if check["passed"]:
            precision, reason = "bf16", reason + " bf16 kept the AUC and the labels and is faster: bf16 accepted."
        else:
            reason += f" bf16 refused: {check['reason']}; fp32 used."
    return {**result, "accepted": True, "runtime": "openvino", "precision": precision, "reason": reason}
