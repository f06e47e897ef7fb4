"""An llm-foundry training YAML → an ablate recipe: what the YAML already says, translated.

    from ablate.foundry import from_foundry
    recipe, notes = from_foundry(yaml.safe_load(text), name="mpt-125m", samples=index_samples, tokens=folder_tokens)

Pure: the caller reads the YAML, says how many samples an MDS folder holds (`samples`), which
streaming's `repeat` and `choose` need to become weights, and how many tokens (`tokens`, the
subsets' sizes: samples × their actual length, not max_seq_len), and what $RUN_NAME says (llm-foundry's
fallback for a blank run_name). An mcli run file is read for the training YAML in its
`parameters:`. Every field read is type-checked, so a wrong one is one line naming it. Every field
llm-foundry has and ablate cannot use becomes a note, written as a comment at the top of the
recipe; the two things only the user knows (the end-of-training mix and the eval tasks) are
written as placeholders that validate, and say so. A finetuning YAML is refused: ablate studies
the end of pretraining on MDS token shards.

Modules: `translate` (the whole, and the data, model and checkpoints), `training` (the training
block: duration, optimizer, scheduler), `fields` (typed access to the YAML).
"""

from ablate.foundry.translate import from_foundry, render

__all__ = ["from_foundry", "render"]
