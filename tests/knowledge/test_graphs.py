"""The query graphs made from the verified model: the int8-weights graph keeps the model's
own int8 codes and embeds like the fp32 graph; a model without such weights is refused."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.graphs import int8_weights
from service.knowledge.model import ModelFiles, load_model_files

TEXTS = [
    "zod",
    "how does the router match path parameters",
    "def parse_header(line: bytes) -> tuple[str, str]:\n    name, _, value = line.partition(b':')",
    "Returns the number of seconds until the certificate expires, or raises when unreadable.",
]


@pytest.fixture(scope="module")
def files() -> ModelFiles:
    return load_model_files(KnowledgeSettings())


def test_every_int8_weight_matrix_runs_on_matmulnbits_with_its_own_codes(
    files: ModelFiles,
) -> None:
    original = onnx.load_from_string(files.model_bytes)
    converted = onnx.load_from_string(int8_weights(files.model_bytes))
    ops = Counter(node.op_type for node in converted.graph.node)
    assert ops["MatMulNBits"] == 36  # six layers x (query, key, value, output, two feed-forward)
    assert ops["MatMul"] == Counter(n.op_type for n in original.graph.node)["MatMul"] - 36
    # The codes are the model's, unchanged: block row n holds column n of a weight, plus 128.
    codes = [
        numpy_helper.to_array(t).tobytes()
        for t in original.graph.initializer
        if t.data_type == TensorProto.INT8 and len(t.dims) == 2
    ]
    stored = {t.name: numpy_helper.to_array(t) for t in converted.graph.initializer}
    for node in converted.graph.node:
        if node.op_type == "MatMulNBits":
            packed = stored[node.input[1]]
            columns = packed.reshape(packed.shape[0], -1).astype(np.int16) - 128
            assert columns.T.astype(np.int8).copy().tobytes() in codes, node.name
    # The widened copies of the replaced weights are gone from the graph.
    assert len(converted.SerializeToString()) < len(files.model_bytes) * 1.1


def test_the_int8_weights_graph_embeds_like_fp32(files: ModelFiles) -> None:
    fp32 = Embedder(files, graph="fp32").embed(TEXTS)
    int8 = Embedder(files, graph="int8-weights").embed(TEXTS)
    cosines = np.sum(fp32 * int8, axis=1)
    assert cosines.min() > 0.999, cosines
    # Each text's nearest neighbour among the others is the same in both graphs.
    assert np.array_equal(np.argsort(fp32 @ fp32.T), np.argsort(int8 @ fp32.T))


def test_a_model_without_int8_coded_weights_is_refused() -> None:
    weight = numpy_helper.from_array(np.ones((32, 4), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="no int8-coded weight matrix"):
        int8_weights(model.SerializeToString())
