"""The engine: plain TensorFlow/Keras code that never imports Django, in rooms by stage, each
importing only the rooms below it:

    decode   files -> uint8 grey arrays (no TensorFlow: the web process validates uploads with it)
    model    backbones, the network, its artifact on disk, the label rule and the calibration
    prepare  the preprocessing spec and the defences against acquisition shortcuts
    data     samples and manifests, patient-grouped splits, synthetic films, the tf.data pipeline
    serve    the Keras predictor, the serving graph, its OpenVINO export, int8, the worker runtime
    judge    metrics, plots, evaluating a saved model, the shortcut report
    training a training run
    cli      `python -m ml.engine.cli`, on top

Every name of the public API (docs/engine.md) is importable from here, `from ml.engine import
Predictor`. Each is imported when first asked for, so `import ml.engine` loads no room, and
asking for a decoding name loads no TensorFlow.
"""
from importlib import import_module

_PUBLIC = {
    "decode.images": ("decode_image_bytes", "ImageDecodeError", "load_image_file"),
    "decode.dicom": ("chest_radiograph_refusal", "DicomIdentity"),
    "model.backbones": ("BACKBONES", "DEFAULT_BACKBONE"),
    "model.network": ("build_model", "compile_model", "set_trainable"),
    "model.artifact": ("ArtifactIntegrityError", "file_sha256", "load_artifact", "save_artifact"),
    "model.decision": ("decide", "results", "select_threshold"),
    "model.temperature": ("apply_temperature", "fit_temperature"),
    "prepare.preprocessing": ("prepare_batch", "PreprocessingSpec", "resize_images"),
    "prepare.harmonise": ("harmonise",),
    "prepare.lungs": ("lung_fields",),
    "prepare.acquisition": ("render_in_style", "styles_from_samples"),
    "data.samples": ("evaluation_samples", "find_manifest", "list_class_folders", "read_manifest", "Sample", "source_name"),
    "data.splits": ("content_fingerprint", "discover_dataset"),
    "data.synthetic": ("make_synthetic_dataset",),
    "data.pipeline": ("Augmentation", "build_augmenter", "class_weights", "load_images", "make_tf_dataset"),
    "serve.predictor": ("Predictor",),
    "serve.serving": ("load_serving_predictor", "ServingPredictor"),
    "serve.graph": ("head_cam_weights",),
    "serve.export": ("export_serving_model", "reduced_precision_check", "validate_export"),
    "serve.int8": ("quantise_int8", "validate_int8"),
    "judge.metrics": ("auc_with_ci", "calibration", "evaluate_predictions", "headline", "wilson_interval"),
    "judge.plots": ("save_evaluation_plots",),
    "judge.evaluate": ("evaluate_artifact",),
    "judge.shortcuts": ("shortcut_report",),
    "training.config": ("PRESETS", "TrainConfig"),
    "training.train": ("train", "TrainingCancelled"),
    "cli": ("add_train_arguments", "build_parser", "config_from_args"),
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # later look-ups find it without coming here
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
