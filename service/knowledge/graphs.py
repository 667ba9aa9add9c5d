"""The ONNX graphs an embedder can run, all made at load from the verified model bytes.

* `fp32` — the model as shipped: onnxruntime widens its int8 weights to float32 when it
  loads the graph, so every run reads ~42 MB of weights (more than this machine's L3).
* `int8-dynamic` — onnxruntime's `quantize_dynamic`: int8 weights and activations. Used
  for batches of chunks (indexing: 1.85× fp32 on one thread); slow for one short query.
* `int8-weights` — the model's own int8 weights, unchanged, on onnxruntime's `MatMulNBits`
  kernel (built for one-row inputs such as a language model's decoding step). The shipped
  graph stores each weight matrix as int8 codes times one scale per output column
  (`Cast → Mul → MatMul`); each such matrix becomes a `MatMulNBits` node with the same
  codes and the column's scale in every block, so no weight is rounded again. With
  `accuracy_level` 4 the kernel rounds each block of 32 activations to int8 as it
  multiplies. A short query embeds in 55–75 % of the fp32 time (BENCHMARKS.md), its
  vectors agree with fp32's to a cosine of 0.9996 and retrieval is unchanged.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from service.knowledge.config import GRAPHS, Graph

__all__ = ["GRAPHS", "Graph", "int8_weights", "prepare", "quantize_dynamic_int8"]

# Activations are rounded to int8 per block of this many values (K of every MatMul here,
# 384 and 1536, is a multiple of it).
BLOCK_SIZE = 32
# MatMulNBits' compute type: 4 is int8 arithmetic (the fast path); lower levels unpack the
# weights to float first and are several times slower than fp32 here.
INT8_COMPUTE = 4
ORT_CONTRIB_DOMAIN = "com.microsoft"


def prepare(model_bytes: bytes, graph: Graph) -> bytes:
    """The serialized graph `graph` of the (verified) model."""
    if graph == "int8-dynamic":
        return quantize_dynamic_int8(model_bytes)
    if graph == "int8-weights":
        return int8_weights(model_bytes)
    return model_bytes


def int8_weights(model_bytes: bytes, *, block_size: int = BLOCK_SIZE) -> bytes:
    """The model with each int8-coded weight matrix on MatMulNBits (module docstring).

    A MatMul whose weight is not int8 codes times per-column scales stays as it is; a
    model with none of them is refused (this graph would then be the fp32 one)."""
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in graph.node:
        weight = _int8_weight(node, producers, initializers) if node.op_type == "MatMul" else None
        if weight is None or weight[0].shape[0] % block_size:
            nodes.append(node)
            continue
        codes, scales = weight
        k, n = codes.shape
        name = node.name or node.output[0]
        # MatMulNBits wants, per output column, its K values in blocks, as unsigned bytes
        # around the implicit zero point 128, and one scale per block.
        blocks = k // block_size
        packed = (codes.T.astype(np.int16) + 128).astype(np.uint8).reshape(n, blocks, block_size)
        graph.initializer.extend(
            [
                numpy_helper.from_array(packed, name + "_q8"),
                numpy_helper.from_array(np.repeat(scales, blocks), name + "_q8_scales"),
            ]
        )
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], name + "_q8", name + "_q8_scales"],
                list(node.output),
                name=name + "_q8",
                domain=ORT_CONTRIB_DOMAIN,
                K=k,
                N=n,
                bits=8,
                block_size=block_size,
                accuracy_level=INT8_COMPUTE,
            )
        )
        replaced += 1
    if not replaced:
        raise ValueError("the model has no int8-coded weight matrix for the int8-weights graph")
    del graph.node[:]
    graph.node.extend(_live(nodes, {out.name for out in graph.output}))
    # The int8 codes now live in the MatMulNBits initializers: drop the originals.
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    model.opset_import.append(helper.make_opsetid(ORT_CONTRIB_DOMAIN, 1))
    serialized: bytes = model.SerializeToString()
    return serialized


def _live(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """`nodes` without those whose results nothing reads (the Cast and Mul nodes that
    widened the replaced weights), in their order."""
    live = list(nodes)
    while True:
        read = outputs | {name for node in live for name in node.input}
        kept = [node for node in live if any(out in read for out in node.output)]
        if len(kept) == len(live):
            return kept
        live = kept


def _int8_weight(
    matmul: onnx.NodeProto,
    producers: dict[str, onnx.NodeProto],
    initializers: dict[str, onnx.TensorProto],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]] | None:
    """(codes (K, N), scales (N,)) when the MatMul's weight is `Cast(int8 codes) * scales`."""
    mul = producers.get(matmul.input[1])
    if mul is None or mul.op_type != "Mul":
        return None
    for coded, scaled in ((0, 1), (1, 0)):
        cast = producers.get(mul.input[coded])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in initializers:
            continue
        if mul.input[scaled] not in initializers:
            continue
        codes = numpy_helper.to_array(initializers[cast.input[0]])
        scales = numpy_helper.to_array(initializers[mul.input[scaled]]).reshape(-1)
        if codes.dtype == np.int8 and codes.ndim == 2 and scales.shape == (codes.shape[1],):
            return codes, scales.astype(np.float32)
    return None


def quantize_dynamic_int8(model_bytes: bytes) -> bytes:
    """Dynamic int8 quantisation of the (verified) graph, done in a temporary directory.

    onnxruntime's quantiser needs the `onnx` package (a dependency of this project)."""
    import tempfile
    from pathlib import Path

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise RuntimeError("quantizing the model needs the onnx package: pip install onnx") from exc
    root = logging.getLogger()
    root.addFilter(_drop_preprocessing_advice)
    try:
        with tempfile.TemporaryDirectory(prefix="patina-quant-") as tmp:
            src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
            src.write_bytes(model_bytes)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            return dst.read_bytes()
    finally:
        root.removeFilter(_drop_preprocessing_advice)


def _drop_preprocessing_advice(record: logging.LogRecord) -> bool:
    # The quantiser logs advice on the root logger at every call; it does not apply here.
    return not str(record.msg).startswith("Please consider to run pre-processing")
