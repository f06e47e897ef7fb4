"""Per-domain held-out loss: each variant's next-token loss and bits per byte on text it never trained on.

    from ablate.run.heldout import heldout_folders, heldout_loss
    folders = heldout_folders(recipe, study / "cache")             # domain → its folder, or the study's copy
    found = heldout_loss(model, tokenizer, recipe.eval, recipe.seq_len, folders)  # domain → loss, bpb, per sequence
    write_heldout(variant_folder, found)  # ablate.study.artifacts: heldout.json, checked

Loss is far less noisy than accuracy (every token is a measurement, not every item), and it is what
mixing laws are fitted on (Ye et al., 2403.16952). Each domain of `eval.heldout` is an MDS folder,
read as `seq_len`-token samples (in place, or the study's ready copy: ablate.data.ready); the first
`eval.heldout_sequences` samples (all by default) are read in index order, so every variant of a
study sees the same sequences and the report can pair them. Per sequence: the summed next-token
negative log-likelihood in nats over its last seq_len − 1 tokens (the first has no context), and the
UTF-8 bytes those tokens decode to (special tokens, such as the EOS between documents, decode to none).
A domain's loss is nats per predicted token; its bits per byte the summed nats / ln 2 / the summed
bytes, comparable across tokenizers.

Shards are read directly with streaming's shard readers, in the evaluating process alone: a
StreamingDataset would wait at barriers for ranks that are not evaluating. The model is measured on
rank 0's GPU where there is one, and put back where it was.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from ablate.data.check import check_heldout_folder
from ablate.errors import AblateError
from ablate.recipe import Eval, Recipe
from ablate.run.dist import local_device

LOGIT_BUDGET = 1 << 28  # floats of logits held at once (1 GiB in fp32): what sizes a batch


def heldout_fields(recipe: Recipe) -> list[str]:
    return [f"eval.heldout.{domain}.location" for domain in recipe.eval.heldout]


def read_sequences(domain: str, folder: str, seq_len: int, limit: int | None) -> np.ndarray:
    """The first `limit` samples (all when None) of a ready folder (ablate.data.ready), in index order:
    (sequences × seq_len) int64."""
    from streaming.base.format import reader_from_json

    index = check_heldout_folder(f"eval.heldout.{domain}.location", folder, seq_len).index
    rows: list[np.ndarray] = []
    for shard_json in index["shards"]:
        shard = reader_from_json(folder, None, shard_json)
        wanted = shard.samples if limit is None else min(shard.samples, limit - len(rows))
        rows += [np.asarray(shard.get_item(i)["tokens"], dtype=np.int64) for i in range(wanted)]
    lengths = {len(r) for r in rows}
    if lengths != {seq_len}:
        raise AblateError(
            f"eval.heldout.{domain}.location: samples of {sorted(lengths)} tokens, seq_len is {seq_len}; rebuild"
        )
    return np.stack(rows)


def heldout_folders(recipe: Recipe, cache: Path) -> dict[str, str]:
    """Each held-out domain's folder to read: its own, or the study's copy in `cache` (ablate.data.ready)."""
    from ablate.data.ready import ready_folders

    ready = ready_folders(recipe, heldout_fields(recipe), cache=cache)
    return {domain: ready[f"eval.heldout.{domain}.location"] for domain in recipe.eval.heldout}


def heldout_loss(
    model: Any, tokenizer: Any, spec: Eval, seq_len: int, folders: dict[str, str] | None = None
) -> dict[str, Any]:
    """Every held-out domain's loss and bits per byte, with the per-sequence values the report pairs.
    `folders`: domain → the folder to read (heldout_folders); each domain's own location by default."""
    import torch

    device, home = local_device(), next(model.parameters()).device
    model.to(device).eval()
    try:
        return {"seq_len": seq_len, "domains": _domains(model, tokenizer, spec, seq_len, folders or {}, device)}
    finally:  # the model back where it was: vLLM, evaluating next, wants the GPU's memory to itself
        model.to(home)
        if device != "cpu":
            torch.cuda.empty_cache()


def _domains(
    model: Any, tokenizer: Any, spec: Eval, seq_len: int, folders: dict[str, str], device: str
) -> dict[str, Any]:
    import torch

    rows = max(1, min(spec.batch_size, LOGIT_BUDGET // (seq_len * int(model.config.vocab_size))))
    domains: dict[str, Any] = {}
    for domain, held in spec.heldout.items():
        sequences = read_sequences(domain, folders.get(domain, held.location), seq_len, spec.heldout_sequences)
        nll = np.empty(len(sequences))
        with torch.no_grad():
            for start in range(0, len(sequences), rows):
                ids = torch.from_numpy(sequences[start : start + rows]).to(device)
                logits = model(input_ids=ids).logits[:, :-1].float()
                token_nll = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
                )
                nll[start : start + len(ids)] = token_nll.view(len(ids), -1).double().sum(dim=1).cpu().numpy()
        texts = tokenizer.batch_decode(sequences[:, 1:].tolist(), skip_special_tokens=True)
        size = np.array([len(text.encode("utf-8")) for text in texts])
        tokens = len(sequences) * (seq_len - 1)
        domains[domain] = {
            "location": held.location,
            "sequences": len(sequences),
            "tokens": tokens,
            "bytes": int(size.sum()),
            "loss": float(nll.sum() / tokens),
            "bits_per_byte": float(nll.sum() / math.log(2) / size.sum()) if size.sum() else None,
            "fingerprint": hashlib.sha256(sequences.tobytes()).hexdigest()[:16],  # the same text in every variant
            "nll": [round(float(x), 6) for x in nll],
            "sequence_bytes": size.tolist(),
        }
    return domains
