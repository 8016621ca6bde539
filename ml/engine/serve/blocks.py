"""The serving model's weighted operations grouped by backbone block, to tell which blocks move the
probability when run in reduced precision (bench/precision_blocks.py) and to keep some in fp32
(int8.quantise_int8's `keep_fp32`).

OpenVINO's converter keeps no Keras layer names on the operations (they read "Convolution_1234"),
so the blocks are found by order: the weighted operations (Convolution, GroupConvolution, MatMul)
in topological order follow Xception's blocks exactly, because each block's operations depend on
the block before and the next block depends on its sum. A separable convolution is two of them
(depthwise GroupConvolution, pointwise Convolution); blocks 2-4 and 13 add a 1x1 residual
convolution. Xception: block1 2, blocks 2-4 5 each, blocks 5-12 6 each, block13 5, block14 4, the
head's MatMul 1: 75. Another backbone, or another count, is cut into runs of RUN operations.
"""
from __future__ import annotations

WEIGHTED = ("Convolution", "GroupConvolution", "MatMul")
XCEPTION = [("block1", 2), *((f"block{i}", 5) for i in (2, 3, 4)), *((f"block{i}", 6) for i in range(5, 13)),
            ("block13", 5), ("block14", 4), ("head", 1)]
RUN = 6


def weighted_operations(xml_path) -> list[str]:
    """The friendly names of the weighted operations of an OpenVINO IR, in topological order."""
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in WEIGHTED]


def block_operations(xml_path) -> dict[str, list[str]]:
    """{block: its weighted operations' names}, in the network's order."""
    names = weighted_operations(xml_path)
    if len(names) == sum(count for _, count in XCEPTION):
        blocks, start = {}, 0
        for block, count in XCEPTION:
            blocks[block], start = names[start:start + count], start + count
        return blocks
    return {f"operations {i + 1}-{min(i + RUN, len(names))}": names[i:i + RUN] for i in range(0, len(names), RUN)}


class UnknownBlocks(ValueError):
    """Blocks asked for that the serving model does not have; the message names the ones it has."""

    def __init__(self, unknown, blocks):
        super().__init__(f"has no block {', '.join(unknown)}; its blocks are {', '.join(blocks)}")


def kept_operations(xml_path, kept_blocks) -> tuple[str, ...]:
    """The weighted operations of `kept_blocks`, as quantise_int8's `keep_fp32` takes them: the one
    translation from block names (`manage.py derive_int8 --keep-fp32`, the version page, the benches)
    to the IR's operations. Raises UnknownBlocks for a block the model does not have."""
    if not kept_blocks:
        return ()
    blocks = block_operations(xml_path)
    unknown = [block for block in kept_blocks if block not in blocks]
    if unknown:
        raise UnknownBlocks(unknown, blocks)
    return tuple(name for block in kept_blocks for name in blocks[block])
