"""The model itself: the backbones it can be built on, the network (`network`), its file on disk
and record (`artifact`), and how its outputs become an answer: the label rule and threshold
(`decision`) and the calibration (`temperature`).

Imports nothing else of the engine. Only `network` and the artifact's loading import TensorFlow."""
