"""Serving: probabilities and heatmap from one forward pass, on OpenVINO (no TensorFlow) or Keras.

    predictor = ServingPredictor.openvino(export_dir, precision="bf16", concurrency=1,
                                          expected_files=export_record["files"])
    predictor = ServingPredictor.keras(artifact_path, expected_sha256=version.sha256)  # reference, fallback
    predictor.predict_batch([pixels, ...])   # uint8 (H, W) arrays from ml.engine.decode.images
    predictor.predict_prepared([predictor.prepare(pixels), ...])  # the same, the films prepared apart (in threads)

Each result: {"label", "probabilities": {class: p}, "positive_probability", "threshold",
"heatmap": uint8 (h, w) at most 128 px on its longer side with the image's aspect ratio,
"heatmap_class", "heatmaps": {class: uint8 map}, "runtime", "precision"}. The heatmap is the
class activation map of the label given (0 = no evidence, 255 = the image's strongest evidence):
store it as a small grey PNG and colour it over the X-ray in the browser. `heatmaps` holds every
class's map, for a caller that decides the label by a rule of its own.

Importing this module, and the whole OpenVINO path, loads neither TensorFlow nor Keras (the
worker must be ready in a second and stay small); `export.py` is the TensorFlow side.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.artifact import ArtifactIntegrityError, file_sha256
from ..model.decision import results
from ..model.temperature import apply_temperature
from ..prepare.preprocessing import PreprocessingSpec, resize_images

EXPORT_FORMAT = 1
EXPORT_RECORD = "export.json"
HEATMAP_MAX_SIDE = 128  # the map holds 10 x 10 cells at 299 px (13 px each here); the browser smooths it over the film
# The CPU plugin's inference precision per serving precision. An int8 export carries its int8
# operations in the model itself (NNCF's quantise/dequantise pairs); what it leaves unquantised
# (the dense head) stays fp32, so its only difference from fp32 is the quantisation checked.
OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


# --- the machine ---------------------------------------------------------------------------

def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_description() -> dict:
    """The CPU model and the flags that decide the matrix-product ceilings."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("model name")), "unknown")
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
    return {"model": model, "cores": available_cores(), "flags": sorted(f for f in cpu_flags() if f in wanted)}


def bf16_supported() -> bool:
    """Native bf16: AMX-BF16 or AVX512-BF16 in the CPU flags, and OpenVINO's CPU plugin agrees.
    (Without them OpenVINO would emulate bf16: slower than fp32 and no reason to lose precision.)"""
    if not {"amx_bf16", "avx512_bf16"} & cpu_flags():
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_for(concurrency: int = 1, cores: int | None = None) -> int:
    """Threads per inference process: the cores shared among the processes running at once."""
    return max(1, (cores or available_cores()) // max(1, int(concurrency)))


# --- the heatmap ---------------------------------------------------------------------------

def class_activation_maps(features: np.ndarray, cam_weights: np.ndarray) -> np.ndarray:
    """(N, h, w, K) feature maps -> (N, h, w, C) float32 maps in [0, 1], every class's for every
    image: relu(sum_k alpha_k,c A_k), each divided by its maximum: one matrix product for all
    classes (the same maps within 3e-6 as one einsum per class, 1.2 ms instead of 1.4 ms for a
    batch of 16 at 299 px)."""
    cam = np.maximum(features.astype(np.float32, copy=False) @ cam_weights.astype(np.float32, copy=False), 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def heatmap_image(cam: np.ndarray, image_shape, max_side: int = HEATMAP_MAX_SIDE) -> np.ndarray:
    """A (h, w) map in [0, 1] -> uint8, bilinearly upsampled to the image's aspect ratio with its
    longer side at most `max_side` (the browser scales it over the full film)."""
    from PIL import Image

    height, width = image_shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray(cam.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    return np.round(np.clip(resized, 0.0, 1.0) * 255.0).astype(np.uint8)


def classifier_record(record: dict) -> dict:
    """What serving needs from a model's record (the export keeps this copy in export.json)."""
    classifier = {key: record[key] for key in ("class_names", "positive_class", "threshold", "preprocessing")}
    return {**classifier, "temperature": float(record.get("temperature", 1.0))}


# --- the predictor -------------------------------------------------------------------------

def read_export(export_dir, expected_files: dict | None = None) -> dict:
    """export.json, after checking every file's sha256 against it (and against `expected_files`,
    the copy the portal keeps: export.json sits beside the files it vouches for)."""
    export_dir = Path(export_dir)
    path = export_dir / EXPORT_RECORD
    if not path.is_file():
        raise ArtifactIntegrityError(f"{export_dir} holds no {EXPORT_RECORD}: it is not a serving export.")
    record = json.loads(path.read_text())
    if record.get("format") != EXPORT_FORMAT:
        raise ArtifactIntegrityError(f"Export format {record.get('format')} is not {EXPORT_FORMAT}: export the model again.")
    if expected_files is not None and expected_files != record["files"]:
        raise ArtifactIntegrityError("The export's file list is not the one recorded for this version.")
    for name, digest in record["files"].items():
        actual = file_sha256(export_dir / name)
        if actual != digest:
            raise ArtifactIntegrityError(f"{name} has sha256 {actual}, but the export says {digest}: refusing to load it.")
    return record


@dataclass(frozen=True)
class PreparedFilm:
    pixels: np.ndarray  # uint8 (S, S, 1): the model's input
    shape: tuple[int, int]  # the film's own (height, width): its heatmap keeps that aspect


class ServingPredictor:
    """Each film prepared (harmonised and resized, preprocessing.resize_images), then one forward
    pass per batch giving the probabilities and the feature map, the label rule, and every
    class's heatmap (the label's as "heatmap")."""

    def __init__(self, forward, classifier: dict, cam_weights: np.ndarray, *, runtime: str, precision: str):
        self.forward = forward  # uint8 (N, S, S, 1) -> (probabilities (N, C), features (N, h, w, K))
        self.classifier = classifier
        self.spec = PreprocessingSpec.from_dict(classifier["preprocessing"])
        self.class_names = list(classifier["class_names"])
        self.positive_class = classifier["positive_class"]
        self.threshold = float(classifier["threshold"])
        self.temperature = float(classifier.get("temperature", 1.0))  # as the Keras Predictor applies it
        self.cam_weights = np.asarray(cam_weights, dtype=np.float32)
        self.runtime, self.precision = runtime, precision
        self.fallback_reason: str | None = None  # set by load_serving_predictor when Keras stands in

    @classmethod
    def openvino(cls, export_dir, *, precision: str = "fp32", concurrency: int = 1, threads: int | None = None,
                 expected_files: dict | None = None, cache_dir=None) -> ServingPredictor:
        """Load a verified export with OpenVINO. Call after forking: a compiled model holds threads.
        `cache_dir` (writable) keeps OpenVINO's compiled blob, so a restarted worker skips compiling."""
        import openvino as ov

        if precision not in OV_PRECISION:
            raise ValueError(f"precision must be one of {sorted(OV_PRECISION)}, not {precision!r}.")
        if precision == "bf16" and not bf16_supported():
            raise ValueError("This CPU computes no bf16 natively (AMX or AVX512-BF16): use fp32.")
        export_dir = Path(export_dir)
        record = read_export(export_dir, expected_files)
        # A prediction says the precision that made it: an int8 model is never labelled fp32, nor the reverse.
        weights = record.get("precision", "fp32")
        if (precision == "int8") != (weights == "int8"):
            raise ValueError(f"This export is {weights}; it cannot be served as {precision}.")
        config = {
            # The CPU plugin defaults to bf16 where the CPU has it: fp32 must be asked for.
            "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
            "INFERENCE_NUM_THREADS": threads or threads_for(concurrency),
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        }
        core = ov.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        compiled = core.compile_model(str(export_dir / "serving.xml"), "CPU", config)
        request = compiled.create_infer_request()
        names = {name: output for output in compiled.outputs for name in output.get_names()}

        def forward(batch):
            out = request.infer({0: np.ascontiguousarray(batch, dtype=np.uint8)})
            return np.array(out[names["probabilities"]]), np.array(out[names["features"]])

        cam = np.load(export_dir / "cam_weights.npy")
        return cls(forward, record["classifier"], cam, runtime="openvino", precision=precision)

    @classmethod
    def keras(cls, artifact_path, *, expected_sha256: str | None = None, threads: int | None = None) -> ServingPredictor:
        """The reference (and fallback): the same two-output function, run by TensorFlow."""
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
            except RuntimeError:  # TensorFlow already started its thread pools in this process
                pass
        from ..model.artifact import load_artifact
        from .graph import head_cam_weights, serving_function

        model, record = load_artifact(artifact_path, expected_sha256)
        serve = serving_function(model, PreprocessingSpec.from_dict(record["preprocessing"]))

        def forward(batch):
            out = serve(tf.constant(batch, dtype=tf.uint8))
            return out["probabilities"].numpy(), out["features"].numpy()

        classifier = classifier_record(record)
        predictor = cls(forward, classifier, head_cam_weights(model), runtime="keras", precision="fp32")
        predictor.model = model
        return predictor

    def prepare(self, image: np.ndarray) -> PreparedFilm:
        """One film as the model takes it: harmonised and resized as its spec says. Pillow and
        scikit-image release the GIL, so a worker prepares a batch's films in threads, on every
        core: with the cpu-scratch harmonisation, 21.3 ms per 1024 px film one after another,
        11.7 ms in two threads (2 cores, quiet)."""
        return PreparedFilm(pixels=resize_images([image], self.spec)[0], shape=tuple(np.shape(image)[:2]))

    def predict_batch(self, images: list[np.ndarray]) -> list[dict]:
        return self.predict_prepared([self.prepare(image) for image in images])

    def predict_prepared(self, films: list[PreparedFilm]) -> list[dict]:
        """One forward pass for films already prepared (`prepare`): the label rule and the heatmap of the label."""
        return self.interpret(films, self.forward_prepared(films)) if films else []

    def forward_prepared(self, films: list[PreparedFilm]):
        """The forward pass alone, for a caller that keeps its thread for the runtime (it releases
        the GIL) and interprets the outputs elsewhere: (probabilities, features)."""
        return self.forward(np.stack([film.pixels for film in films]))

    def interpret(self, films: list[PreparedFilm], outputs) -> list[dict]:
        """The label rule and every class's heatmap, from the outputs of `forward_prepared(films)`."""
        probabilities, features = outputs
        probabilities = apply_temperature(probabilities, self.temperature)
        answers = results(probabilities, self.class_names, self.positive_class, self.threshold)
        # Every class's map from the same forward pass: a caller that decides the label by another
        # rule (a site's own threshold) shows the map of its label.
        cams = class_activation_maps(features, self.cam_weights)
        out = []
        for row, (answer, film) in enumerate(zip(answers, films)):
            heatmaps = {name: heatmap_image(cams[row, :, :, index], film.shape) for index, name in enumerate(self.class_names)}
            out.append({**answer, "heatmap": heatmaps[answer["label"]], "heatmap_class": answer["label"], "heatmaps": heatmaps,
                        "runtime": self.runtime, "precision": self.precision})
        return out


def load_serving_predictor(artifact_path, *, export_dir=None, validation: dict | None = None, expected_sha256: str | None = None,
                           expected_files: dict | None = None, concurrency: int = 1, cache_dir=None) -> ServingPredictor:
    """What a worker loads: the OpenVINO export at the precision `validation` (validate_export's
    result) accepted, else Keras. `fallback_reason` says why Keras serves (None on OpenVINO).
    Only the Keras fallback imports TensorFlow."""
    reason = validation["reason"] if validation else "No validated export exists for this model."
    if export_dir is not None and validation and validation.get("accepted"):
        # bf16 accepted on a machine that has it; fp32 (validated too) where this one does not. An
        # int8 export (a derived version of its own) holds int8 weights: it runs as int8 or not at all.
        precision = validation["precision"] if validation["precision"] == "int8" else (
            "bf16" if validation["precision"] == "bf16" and bf16_supported() else "fp32")
        try:
            return ServingPredictor.openvino(export_dir, precision=precision, concurrency=concurrency,
                                             expected_files=expected_files, cache_dir=cache_dir)
        except (ArtifactIntegrityError, OSError, RuntimeError, ValueError) as error:
            reason = f"The validated export could not be loaded: {error}"
    predictor = ServingPredictor.keras(artifact_path, expected_sha256=expected_sha256, threads=threads_for(concurrency))
    predictor.fallback_reason = reason
    return predictor
