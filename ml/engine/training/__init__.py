"""Training: the run's configuration and presets (`config`), its Keras callbacks (`callbacks`),
and `train`, which turns a dataset folder into a judged, saved model.

May import every other room; only the command line (`ml.engine.cli`) imports it."""
