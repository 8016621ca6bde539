"""Serving a trained model: the Keras predictor with Grad-CAM (`predictor`), the one-pass serving
graph (`graph`), its OpenVINO export and validation (`export`), int8 quantisation (`int8`), and
the worker's runtime (`serving`, no TensorFlow on the OpenVINO path).

May import `decode`, `model` and `prepare`."""
