"""From a trained Keras artifact to a validated serving model (TensorFlow side; run at registration).

    record = export_serving_model("model.keras", "export/")      # export/serving.xml|.bin, cam_weights.npy, export.json
    result = validate_export("export/", "model.keras", images, labels)  # which precision, or why none
    ServingPredictor.openvino("export/", precision=result["precision"])  # in the worker, no TensorFlow
    quantise_int8("export/", "int8/", training_images)            # a derived version's int8 export
    validate_int8("int8/", "export/", "model.keras", images, labels)  # accepted, or why not

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


def reduced_precision_check(reference: np.ndarray, candidate: np.ndarray, labels, positive: int, threshold: float,
                            precision: str) -> dict:
    """The rule every reduced precision (bf16, int8) must pass against the Keras reference on the
    same images: the AUC may fall by at most MAX_AUC_DROP and at most MAX_FLIP_FRACTION of the
    labels may change at the threshold. No labels, or one class only, means no AUC: refused."""
    flips = float(np.mean((reference[:, positive] >= threshold) != (candidate[:, positive] >= threshold)))
    check = {"flip_fraction": flips, "max_abs_difference": float(np.abs(reference - candidate).max())}
    reasons = []
    if labels is None:
        reasons.append("no labelled images to measure the AUC on")
    else:
        labels = np.asarray(labels).astype(int)
        auc_keras, auc_candidate = _auc(labels, reference[:, positive]), _auc(labels, candidate[:, positive])
        check["auc_keras"], check[f"auc_{precision}"] = auc_keras, auc_candidate
        if auc_keras is None:
            reasons.append("the images hold only one class, so no AUC")
        elif auc_keras - auc_candidate > MAX_AUC_DROP:
            reasons.append(f"AUC fell from {auc_keras:.4f} to {auc_candidate:.4f} (allowed drop {MAX_AUC_DROP})")
    if flips > MAX_FLIP_FRACTION:
        reasons.append(f"{flips:.1%} of labels flip at the threshold {threshold} (allowed {MAX_FLIP_FRACTION:.1%})")
    check["passed"] = not reasons
    check["reason"] = "; ".join(reasons) or "AUC and labels kept"
    return check


def _faster_or_refused(check: dict, fast, fp32, batch, precision: str) -> dict:
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
        check = reduced_precision_check(expected, candidate, labels, positive, reference.threshold, "bf16")
        if check["passed"]:
            # Without AMX, bf16 convolutions can be slower than fp32 (measured: 3x on AVX512-BF16 alone).
            _faster_or_refused(check, bf16, fp32, resized, "bf16")
        result["checks"]["bf16"] = check
        if check["passed"]:
            precision, reason = "bf16", reason + " bf16 kept the AUC and the labels and is faster: bf16 accepted."
        else:
            reason += f" bf16 refused: {check['reason']}; fp32 used."
    return {**result, "accepted": True, "runtime": "openvino", "precision": precision, "reason": reason}


# --- int8: a derived version of its own -----------------------------------------------------

INT8_CALIBRATION_IMAGES = 300  # NNCF's own default subset size; fewer if the training split is smaller


def quantise_int8(export_dir, out_dir, calibration_images: list[np.ndarray], *, expected_files: dict | None = None,
                  calibrated_on: str = "") -> dict:
    """Post-training int8 quantisation of a validated fp32 serving export with NNCF; write the int8
    IR, the same CAM weights and an export.json (precision "int8") to `out_dir`; return that record.

    `calibration_images` are uint8 grey arrays from the TRAINING split (never the images the result
    is validated on): NNCF measures the range of every activation on them and places the
    quantisers. The dense head (a MatMul) is left fp32: it costs nothing and the probabilities
    are what the check compares. The feature map the heatmap is made of is the int8 network's."""
    import nncf
    import openvino as ov

    from .serving import read_export

    export_dir, out = Path(export_dir), Path(out_dir)
    record = read_export(export_dir, expected_files)
    if record.get("precision", "fp32") != "fp32":
        raise ValueError(f"{export_dir} holds a {record['precision']} model: int8 is made from an fp32 export only.")
    if not calibration_images:
        raise ValueError("No calibration images were given.")
    spec = PreprocessingSpec.from_dict(record["classifier"]["preprocessing"])
    resized = resize_images(calibration_images, spec)
    model = ov.Core().read_model(str(export_dir / "serving.xml"))
    calibration = nncf.Dataset([resized[i:i + 1] for i in range(len(resized))])
    quantised = nncf.quantize(model, calibration, subset_size=len(resized), ignored_scope=nncf.IgnoredScope(types=["MatMul"]))
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantised, str(out / "serving.xml"), compress_to_fp16=False)
    shutil.copyfile(export_dir / "cam_weights.npy", out / "cam_weights.npy")
    files = {name: file_sha256(out / name) for name in ("serving.xml", "serving.bin", "cam_weights.npy")}
    int8 = {
        **record, "precision": "int8", "files": files,
        "derived_from": {"files": record["files"]},
        "calibration": {"n_images": len(resized), "images": calibrated_on},
        "versions": {**record.get("versions", {}), "openvino": ov.__version__, "nncf": nncf.__version__},
    }
    _write_json(out / EXPORT_RECORD, int8)
    return int8


def validate_int8(int8_dir, fp32_dir, artifact_path, images: list[np.ndarray], labels=None, *,
                  expected_sha256: str | None = None) -> dict:
    """Compare an int8 export with the Keras reference on `images` (the evaluation images, never the
    calibration ones), exactly as bf16 is compared: AUC within MAX_AUC_DROP, at most
    MAX_FLIP_FRACTION of labels flipped at the threshold, and faster than the fp32 export here.
    Also measures how far the one-pass heatmap (from the int8 feature map) moves from Keras'.
    Returns {"accepted", "runtime", "precision": "int8", "reason", "checks": {"int8": ...}, ...}."""
    from .decision import decide
    from .serving import class_activation_maps

    verify_artifact(artifact_path, expected_sha256)
    reference = ServingPredictor.keras(artifact_path, expected_sha256=expected_sha256)
    resized = resize_images(images, reference.spec)
    expected, expected_features = reference.forward(resized)
    result = {"n_images": len(images), "cpu": cpu_description(), "runtime": "openvino", "precision": "int8"}
    try:
        int8 = ServingPredictor.openvino(int8_dir, precision="int8")
        fp32 = ServingPredictor.openvino(fp32_dir, precision="fp32")
    except Exception as error:
        return {**result, "accepted": False, "checks": {}, "reason": f"The int8 export cannot be loaded: {error}"}
    candidate, features = int8.forward(resized)
    positive = reference.class_names.index(reference.positive_class)
    check = reduced_precision_check(expected, candidate, labels, positive, reference.threshold, "int8")
    # The heatmap of the class Keras labelled, from each network's own feature map (maps in [0, 1]).
    labels_said = decide(expected, reference.class_names, reference.positive_class, reference.threshold)
    classes = [reference.class_names.index(label) for label in labels_said]
    labelled = np.arange(len(classes)), slice(None), slice(None), classes  # each image's map of that class
    gap = np.abs(class_activation_maps(expected_features, reference.cam_weights)[labelled]
                 - class_activation_maps(features, int8.cam_weights)[labelled])
    check["heatmap_max_difference"], check["heatmap_mean_difference"] = float(gap.max()), float(gap.mean())
    if check["passed"]:
        _faster_or_refused(check, int8, fp32, resized, "int8")
    accepted = check["passed"]
    reason = ("int8 kept the AUC and the labels against Keras and is faster than fp32: accepted."
              if accepted else f"int8 refused: {check['reason']}.")
    return {**result, "accepted": accepted, "checks": {"int8": check}, "reason": reason}
