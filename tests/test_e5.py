"""kb.embedders.e5's torch path: the plain-torch encoder computes what transformers' BertModel computes over the
same weights (it replaced BertModel to spare a huge ingest transformers' ~150 MB, issue 10)."""

from __future__ import annotations

import sys

import numpy as np


def test_the_plain_torch_encoder_equals_transformers_bert_on_the_packaged_weights():
    import torch
    from transformers import BertConfig, BertModel

    from kb.embedders.e5 import TorchEncoder, dense_weights, find_weights, read_weights

    w = read_weights(find_weights())
    weights = dense_weights(w)
    h = w["hidden"]
    config = BertConfig(vocab_size=1, hidden_size=h, num_hidden_layers=w["layers"], num_attention_heads=w["heads"],
                        intermediate_size=w["ffn"], max_position_embeddings=w["positions"],
                        type_vocab_size=w["types"], layer_norm_eps=w["eps"], hidden_act="gelu")
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    state = {"embeddings.word_embeddings.weight": torch.zeros(1, h),
             "embeddings.position_embeddings.weight": torch.from_numpy(weights["emb.pos"]),
             "embeddings.token_type_embeddings.weight": torch.from_numpy(weights["emb.type"]),
             "embeddings.LayerNorm.weight": torch.from_numpy(weights["emb.ln.w"]),
             "embeddings.LayerNorm.bias": torch.from_numpy(weights["emb.ln.b"])}
    for name, array in weights.items():
        if name.startswith("l"):
            layer, short, kind = name.split(".")
            state[f"encoder.layer.{layer[1:]}.{names[short]}.{'weight' if kind == 'w' else 'bias'}"] = \
                torch.from_numpy(array)
    bert = BertModel(config, add_pooling_layer=False)
    bert.load_state_dict(state, strict=False)
    bert.eval()
    ours = TorchEncoder(weights, w["layers"], w["heads"], w["eps"], torch.device("cpu"), torch.float32)

    rng = np.random.default_rng(7)
    embeds = torch.from_numpy(rng.normal(0, 0.05, (3, 40, h)).astype(np.float32))
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, 25:] = 0  # padded rows: their keys must not be attended to
    mask[2, 3:] = 0
    with torch.inference_mode():
        want = bert(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        got = ours(embeds, mask)
    keep = mask.bool()
    assert torch.allclose(got[keep], want[keep], atol=1e-4, rtol=1e-4)


def test_embedding_documents_does_not_import_transformers():
    import subprocess

    code = ("import sys; from kb.embedders.e5 import E5Embedder; E5Embedder().embed_documents(['a passage']); "
            "print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_batches_keep_to_the_token_budget_in_whole_multiples_of_rows():
    from kb.embedders.e5 import _batches

    rng = np.random.default_rng(7)
    windows = sorted(((i, [0] * int(n)) for i, n in enumerate(rng.integers(3, 513, 400))), key=lambda w: len(w[1]))
    batches = list(_batches(windows, 32, 4096, 32, 4))
    assert sorted(i for b in batches for i, _ in b) == list(range(400))  # every window once
    for b in batches:
        longest = -(-max(len(ids) for _, ids in b) // 32) * 32
        assert len(b) <= 32 and len(b) * longest <= 4096
    # every batch but the last of a run of one padded length is a whole multiple of 4 rows: none padded
    full = [b for b, nxt in zip(batches, batches[1:]) if -(-len(b[-1][1]) // 32) == -(-len(nxt[0][1]) // 32)]
    assert full and all(len(b) % 4 == 0 for b in full)
    # without a budget only the row count cuts
    assert [len(b) for b in _batches(windows, 32, 0, 1)] == [32] * 12 + [16]
