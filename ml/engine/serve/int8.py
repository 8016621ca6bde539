"""int8: a derived model version of its own. Post-training quantisation of a validated fp32 export
with NNCF, calibrated on training images, and its validation against the Keras reference by the
rule every reduced precision passes (`export.reduced_precision_check`)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..model.artifact import file_sha256, verify_artifact
from ..prepare.preprocessing import PreprocessingSpec, resize_images
from .export import faster_or_refused, write_json
from .shifted import add_shifted_parts, judge_part
from .serving import EXPORT_RECORD, ServingPredictor, cpu_description

INT8_CALIBRATION_IMAGES = 300  # NNCF's own default subset size; fewer if the training split is smaller


def quantise_int8(export_dir, out_dir, calibration_images: list[np.ndarray], *, expected_files: dict | None = None,
                  calibrated_on: str = "", keep_fp32: tuple[str, ...] = ()) -> dict:
    """Post-training int8 quantisation of a validated fp32 serving export with NNCF; write the int8
    IR, the same CAM weights and an export.json (precision "int8") to `out_dir`; return that record.

    `calibration_images` are uint8 grey arrays from the TRAINING split (never the images the result
    is validated on): NNCF measures the range of every activation on them and places the
    quantisers. The dense head (a MatMul) is left fp32: it costs nothing and the probabilities
    are what the check compares. `keep_fp32` names more operations to leave in fp32 (NNCF's ignored
    scope; blocks.block_operations finds a backbone block's). The feature map the heatmap is made of
    is the int8 network's."""
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
    quantised = nncf.quantize(model, calibration, subset_size=len(resized), ignored_scope=nncf.IgnoredScope(names=list(keep_fp32), types=["MatMul"]))
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantised, str(out / "serving.xml"), compress_to_fp16=False)
    shutil.copyfile(export_dir / "cam_weights.npy", out / "cam_weights.npy")
    files = {name: file_sha256(out / name) for name in ("serving.xml", "serving.bin", "cam_weights.npy")}
    int8 = {
        **record, "precision": "int8", "files": files,
        "derived_from": {"files": record["files"]},
        "calibration": {"n_images": len(resized), "images": calibrated_on}, "kept_fp32": len(keep_fp32),
        "versions": {**record.get("versions", {}), "openvino": ov.__version__, "nncf": nncf.__version__},
    }
    write_json(out / EXPORT_RECORD, int8)
    return int8


def validate_int8(int8_dir, fp32_dir, artifact_path, images: list[np.ndarray], labels=None, *,
                  expected_sha256: str | None = None, shifted: dict | None = None) -> dict:
    """Compare an int8 export with the Keras reference on `images` (the evaluation images, never the
    calibration ones), exactly as bf16 is compared: AUC within MAX_AUC_DROP, at most
    MAX_FLIP_FRACTION of labels flipped at the threshold, at most 1% of films moved by more than 0.05,
    the same on every `shifted` part (films unlike the training set: shifted.shifted_parts), and
    faster than the fp32 export here.
    Also measures how far the one-pass heatmap (from the int8 feature map) moves from Keras'.
    Returns {"accepted", "runtime", "precision": "int8", "reason", "checks": {"int8": ...}, ...}."""
    from ..model.decision import decide
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
    check = judge_part(expected, candidate, labels, positive, reference.threshold, "int8", auc_required=True)
    # The heatmap of the class Keras labelled, from each network's own feature map (maps in [0, 1]).
    labels_said = decide(expected, reference.class_names, reference.positive_class, reference.threshold)
    classes = [reference.class_names.index(label) for label in labels_said]
    labelled = np.arange(len(classes)), slice(None), slice(None), classes  # each image's map of that class
    gap = np.abs(class_activation_maps(expected_features, reference.cam_weights)[labelled]
                 - class_activation_maps(features, int8.cam_weights)[labelled])
    check["heatmap_max_difference"], check["heatmap_mean_difference"] = float(gap.max()), float(gap.mean())
    add_shifted_parts(check, reference, int8, shifted, reference.spec, positive, reference.threshold, "int8")
    if check["passed"]:
        faster_or_refused(check, int8, fp32, resized, "int8")
    accepted = check["passed"]
    reason = ("int8 kept the AUC, the labels and every film's probability against Keras, also off the training distribution, "
              "and is faster than fp32: accepted."
              if accepted else f"int8 refused: {check['reason']}.")
    return {**result, "accepted": accepted, "checks": {"int8": check}, "reason": reason}
