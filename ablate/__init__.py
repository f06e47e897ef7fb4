"""ablate: end-of-training data ablation studies for LLM pretraining.

The stages, in the order data flows through them (each reads only what the one before wrote):

    ablate.data    raw text → MDS shards per subset, with a manifest of their sizes
    ablate.plan    recipe → plan.json: leave-one-out variants, mixtures, epochs, cost (pure core)
    ablate.run     plan.json + checkpoint → each variant continued with Composer, evaluated with lm-eval
    ablate.report  the study folder → Δ vs baseline with honest intervals (pure core)

`ablate.study` is the study folder they hand off through, below them all: its paths (store), typed JSON
files (artifacts), job folders' rules (job) and stale results (stale). `ablate.choices` holds the closed
sets of names a field or flag takes, `ablate.recipe` the validated recipe, `ablate.stats` the statistics
plan and report share, `ablate.analyze` fit and suggest, `ablate.demo` the embedded demo study.
Importing this package imports nothing heavy: torch, composer, streaming and lm_eval load only
inside the run stage's training and evaluation modules.
"""

__version__ = "0.1.0"
