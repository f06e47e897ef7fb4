"""Per-domain held-out loss: each variant's next-token loss and bits per byte on text it never trained on.

    from ablate.run.heldout import check_heldout, heldout_loss
    check_heldout(recipe)                                    # one line per problem, before any training
    found = heldout_loss(model, tokenizer, recipe.eval, recipe.seq_len)  # domain → loss, bpb, per sequence
    write_heldout(variant_folder, found)                     # ablate.artifacts: heldout.json, checked

Loss is far less noisy than accuracy (every token is a measurement, not every item), and it is what
mixing laws are fitted on (Ye et al., 2403.16952). Each domain of `eval.heldout` is an MDS folder of
`seq_len`-token samples, as `data build` writes them; the first `eval.heldout_sequences` samples (all by
default) are read in index order, so every variant of a study sees the same sequences and the report
can pair them. Per sequence: the summed next-token negative log-likelihood in nats over its last
seq_len − 1 tokens (the first has no context), and the UTF-8 bytes those tokens decode to (special
tokens, such as the EOS between documents, decode to none). A domain's loss is nats per predicted
token; its bits per byte the summed nats / ln 2 / the summed bytes, comparable across tokenizers.

Shards are read directly with streaming's shard readers, in the evaluating process alone: a
StreamingDataset would wait at barriers for ranks that are not evaluating. The model is measured on
rank 0's GPU where there is one, and put back where it was.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from ablate.data.shards import check_heldout_folder
from ablate.errors import AblateError
from ablate.recipe import Eval, Recipe
from ablate.run.dist import local_device

LOGIT_BUDGET = 1 << 28  # floats of logits held at once (1 GiB in fp32): what sizes a batch


def check_heldout(recipe: Recipe) -> None:
    """Every held-out folder is readable MDS of the recipe's seq_len; one line naming the field if not."""
    for domain, spec in recipe.eval.heldout.items():
        _index(domain, spec.location, recipe.seq_len)


def _index(domain: str, location: str, seq_len: int) -> dict[str, Any]:
    return check_heldout_folder(f"eval.heldout.{domain}.location", location, seq_len)


def read_sequences(domain: str, location: str, seq_len: int, limit: int | None) -> np.ndarray:
    """The folder's first `limit` samples (all when None), in index order: (sequences × seq_len) int64."""
    from streaming.base.format import reader_from_json

    index = _index(domain, location, seq_len)
    rows: list[np.ndarray] = []
    for shard_json in index["shards"]:
        shard = reader_from_json(location, None, shard_json)
        wanted = shard.samples if limit is None else min(shard.samples, limit - len(rows))
        rows += [np.asarray(shard.get_item(i)["tokens"], dtype=np.int64) for i in range(wanted)]
    lengths = {len(r) for r in rows}
    if lengths != {seq_len}:
        raise AblateError(
            f"eval.heldout.{domain}.location: samples of {sorted(lengths)} tokens, seq_len is {seq_len}; rebuild"
        )
    return np.stack(rows)


def heldout_loss(model: Any, tokenizer: Any, spec: Eval, seq_len: int) -> dict[str, Any]:
    """Every held-out domain's loss and bits per byte, with the per-sequence values the report pairs."""
    import torch

    device, home = local_device(), next(model.parameters()).device
    model.to(device).eval()
    try:
        return {"seq_len": seq_len, "domains": _domains(model, tokenizer, spec, seq_len, device)}
    finally:  # the model back where it was: vLLM, evaluating next, wants the GPU's memory to itself
        model.to(home)
        if device != "cpu":
            torch.cuda.empty_cache()


def _domains(model: Any, tokenizer: Any, spec: Eval, seq_len: int, device: str) -> dict[str, Any]:
    import torch

    rows = max(1, min(spec.batch_size, LOGIT_BUDGET // (seq_len * int(model.config.vocab_size))))
    domains: dict[str, Any] = {}
    for domain, held in spec.heldout.items():
        sequences = read_sequences(domain, held.location, seq_len, spec.heldout_sequences)
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
