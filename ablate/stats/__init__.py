"""Statistics for honest deltas. Pure numpy and the standard library (scipy.special where named): no
torch, no clock. `from ablate import stats; stats.paired_bootstrap(...)`: every estimator is here, each
from its module: `intervals` (the paired bootstrap over items or clusters, the seed term, the normal
interval), `power`, `significance`, `trust` (seed noise, decision consistency) and `categories`
(Gauntlet scores). How an interval is computed, and why, is docs/report.md's "Seed noise in every
interval" and "Clusters"; tests/test_significance.py calibrates the intervals and flags by simulation.
"""

from ablate.stats.categories import gauntlet_delta, gauntlet_score
from ablate.stats.intervals import (
    MAX_PATTERNS,
    SEED_METHOD,
    cluster_codes,
    item_patterns,
    normal_draws,
    normal_interval,
    paired_bootstrap,
    percentile_interval,
    pooled_variance,
    resample_units,
    seed_term,
    unpaired_stderr,
)
from ablate.stats.power import (
    POWER,
    design_effect,
    detectable_effect,
    items_needed,
    minimum_detectable_effect,
    seeds_needed,
)
from ablate.stats.significance import ADJUSTMENTS, adjust_p_values, bootstrap_p_value
from ablate.stats.trust import (
    SignalNoise,
    decision_consistency,
    moderated_variances,
    pair_agreement,
    seed_noise,
    sign_kept,
)

__all__ = [
    "ADJUSTMENTS", "MAX_PATTERNS", "POWER", "SEED_METHOD", "SignalNoise", "adjust_p_values", "bootstrap_p_value",
    "cluster_codes", "decision_consistency", "design_effect", "detectable_effect", "gauntlet_delta", "gauntlet_score",
    "item_patterns", "items_needed", "minimum_detectable_effect", "moderated_variances", "normal_draws",
    "normal_interval", "pair_agreement", "paired_bootstrap", "percentile_interval", "pooled_variance",
    "resample_units", "seed_noise", "seed_term", "seeds_needed", "sign_kept", "unpaired_stderr",
]  # fmt: skip
