"""What this machine can compute, for bench/inference.py to set the model's speed against: the
matrix-product ceilings of each precision (NumPy, TensorFlow, OpenVINO fp32, bf16 and int8), the
same on the model's own products, the model's GFLOP per image, and the timing helpers they share."""
from __future__ import annotations

import statistics
import time
from collections import Counter

import numpy as np

from ml.engine.serve.serving import OV_PRECISION, available_cores, bf16_supported


def times(function, repeats: int) -> list[float]:
    function()  # warm-up: compilation, first-call allocations
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        out.append(time.perf_counter() - started)
    return out


def median_time(function, repeats: int) -> float:
    return statistics.median(times(function, repeats))


def best_rate(function, flop: float, repeats: int) -> float:
    """GFLOP/s of the fastest repeat: a ceiling is what the machine can do, noise only lowers it."""
    return flop / min(times(function, repeats)) / 1e9


def _fake_quantize(node, limit: float, levels: int):
    """NNCF's int8 pattern: a FakeQuantize in [-limit, limit] before an operand. OpenVINO's CPU
    plugin fuses it into the product and multiplies in int8 (u8 x i8 with VNNI or AMX-INT8)."""
    import openvino.opset13 as ops

    low, high = ops.constant(np.float32(-limit)), ops.constant(np.float32(limit))
    return ops.fake_quantize(node, low, high, low, high, levels)


def openvino_matmul(m: int, k: int, n: int, precision: str, repeats: int) -> float:
    """GFLOP/s (int8: GOP/s) of an (m, k) x (k, n) product compiled by OpenVINO as the worker
    compiles its model (latency hint, one stream, every core: without them OpenVINO gave 1/5 of this)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    left = ops.parameter([m, k], ov.Type.f32)
    if precision == "int8":  # activations on 256 levels, weights on 255 (symmetric), as NNCF places them
        product = ops.matmul(_fake_quantize(left, 4.0, 256), _fake_quantize(ops.constant(b), 4.0, 255), False, False)
    else:
        product = ops.matmul(left, ops.constant(b), False, False)
    model = ov.Model([product], [left])
    config = {"INFERENCE_PRECISION_HINT": OV_PRECISION[precision], "NUM_STREAMS": 1,
              "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": available_cores()}
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    return best_rate(lambda: request.infer({0: a}), 2.0 * m * k * n, repeats)


def matmul_ceilings(repeats: int, n: int = 2048) -> dict:
    """GFLOP/s of an n x n matrix product: NumPy, TensorFlow and OpenVINO fp32, OpenVINO bf16.
    The fp32 ceiling is the best of the three (NumPy's OpenBLAS is far below oneDNN here)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    flop = 2.0 * n ** 3
    result = {"numpy_fp32": best_rate(lambda: a @ b, flop, repeats)}
    ta, tb = tf.constant(a), tf.constant(b)
    product = tf.function(lambda: tf.linalg.matmul(ta, tb))
    result["tensorflow_fp32"] = best_rate(lambda: product().numpy(), flop, repeats)
    for precision in ["fp32"] + (["bf16"] if bf16_supported() else []) + ["int8"]:
        result[f"openvino_{precision}"] = openvino_matmul(n, n, n, precision, repeats)
    ceilings = {"fp32": max(result["numpy_fp32"], result["tensorflow_fp32"], result["openvino_fp32"])}
    for precision in ("bf16", "int8"):
        if f"openvino_{precision}" in result:
            ceilings[precision] = result[f"openvino_{precision}"]
    return {"measured": result, "ceiling": ceilings}


def model_matmuls(model, batch: int) -> Counter:
    """The matrix products inside the model at this batch size, (M, K, N) -> how many: a pointwise
    convolution is (batch x h x w, in, out), a k x k one (im2col) (batch x h x w, k x k x in, out),
    a dense layer (batch, in, out). Depthwise convolutions are no matrix product and are left out."""
    import keras

    from ml.engine.model.network import backbone_of

    shapes = Counter()
    for layer in backbone_of(model).layers + model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            _, h, w, out_c = layer.output.shape
            shapes[(batch * h * w, layer.input.shape[-1], out_c)] += 1
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, out_c = layer.output.shape
            shapes[(batch * h * w, layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1], out_c)] += 1
        elif isinstance(layer, keras.layers.Dense):
            shapes[(batch, layer.input.shape[-1], layer.units)] += 1
    return shapes


def model_shaped_ceiling(model, precision: str, repeats: int, batch: int = 16) -> float:
    """GFLOP/s the matrix-product engine reaches on this model's own products at this batch size
    (all its FLOP over the sum of their best times): a fairer ceiling than one giant square
    product, since thin products (few channels, many pixels) run far slower."""
    shapes = model_matmuls(model, batch)
    seconds = sum(count * 2.0 * m * k * n / 1e9 / openvino_matmul(m, k, n, precision, repeats) for (m, k, n), count in shapes.items())
    return sum(count * 2.0 * m * k * n for (m, k, n), count in shapes.items()) / 1e9 / seconds


def model_gflop(model) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers, per image."""
    import keras

    from ml.engine.model.network import backbone_of

    macs = 0
    for layer in backbone_of(model).layers + model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            _, h, w, out_c = layer.output.shape
            k, in_c = layer.kernel_size, layer.input.shape[-1]
            macs += h * w * (k[0] * k[1] * in_c + in_c * out_c)
        elif isinstance(layer, (keras.layers.Conv2D,)):
            _, h, w, out_c = layer.output.shape
            macs += h * w * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1] * out_c
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return 2.0 * macs / 1e9
