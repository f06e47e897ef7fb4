"""Statistics for honest deltas. Pure numpy and the standard library (scipy.special where named): no
torch, no clock. `from ablate import stats; stats.paired_bootstrap(...)`: every estimator is here, each
from its module: `intervals` (the bootstrap and the normal interval), `power`, `significance`,
`trust` (seed noise, decision consistency) and `categories` (Gauntlet scores).

How an attribution interval is computed (`ablate report` prints the same in its footnote):

- Δ = variant − baseline on the items both were scored on, paired by item. The interval is the
  percentile interval of Δ* over B bootstrap resamples: each resample draws the n items with
  replacement and averages the per-item differences.
- Training-seed noise (data order) is not item noise: the same items scored after another seed's run
  move together. Each side is averaged over its seeds item by item, the items are resampled, and a
  seed term is added to every resample: sd · √(1/seeds_variant + 1/seeds_baseline) · T_df, where sd is
  the pooled seed-to-seed SD of the score from replicate runs (by default a second baseline seed) and
  T_df Student's t with the estimate's degrees of freedom, so that an SD estimated from one or two
  replicates widens the interval as much as its own uncertainty asks (a t interval where seed noise
  dominates, the item bootstrap where items do). The sd is never below what the replicates' items'
  own flips add up to (Σ across-seed variance of each item, or cluster sum, / n²): one replicate's
  two whole-run scores can agree by chance, and that floor is read off hundreds of items instead.
  Resampling two or three seeds themselves would understate their spread by half or more. Without
  any replicate there is no seed term, and the interval covers item sampling only: the report says
  its flags are conditional on one run.
- Clusters: items that ask the same underlying fact are not independent (a model that knows the fact
  gets all of them right), and resampling them one by one gives too narrow an interval. When every
  item of a task carries a `cluster` label in its lm-eval doc (on both sides; else items are drawn one
  by one), a resample draws the G clusters with replacement instead, each bringing all its items;
  Δ* = the drawn clusters' summed item differences over the number of items drawn. The same cluster
  draw applies to every seed.
- Exact and fast: resampling n items with replacement only changes how often each distinct item
  *pattern* (the item's values across seeds) is drawn, so the counts per pattern are one multinomial
  draw. For 0/1 metrics and one seed there are at most 3 patterns (−1, 0, +1), so a resample costs
  O(patterns) instead of O(n). Metrics with many distinct values resample item indices directly.
  Clusters are resampled the same way: a cluster is a unit whose pattern is (its sum per seed, its
  size), and an item is a cluster of one. 0/1 items in clusters of k have at most 2k + 1 sums a size,
  but each pattern costs a binomial draw per resample, so clustered tasks cost a few times more.
- Power with clusters: n clustered items are worth n / design effect independent ones; the design
  effect (variance of the mean under cluster sampling over that under item sampling) is estimated from
  the baseline's own item scores, so it matches the cluster bootstrap rather than assuming the worst.
- Without per-item logs: an unpaired normal interval from lm-eval's standard errors.
- Significance: each cell's two-sided p-value comes from its own resamples; the report adjusts them
  over the whole table (Benjamini–Hochberg by default, or Holm), since a table of many cells flags
  some by chance alone. tests/test_significance.py calibrates both by simulation.
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
    decision_consistency,
    moderated_variances,
    pair_agreement,
    seed_noise,
    sign_kept,
)

__all__ = [
    "ADJUSTMENTS", "MAX_PATTERNS", "POWER", "SEED_METHOD", "adjust_p_values", "bootstrap_p_value", "cluster_codes",
    "decision_consistency", "design_effect", "detectable_effect", "gauntlet_delta", "gauntlet_score",
    "item_patterns", "items_needed", "minimum_detectable_effect", "moderated_variances", "normal_draws",
    "normal_interval", "pair_agreement", "paired_bootstrap", "percentile_interval", "pooled_variance",
    "resample_units", "seed_noise", "seed_term", "seeds_needed", "sign_kept", "unpaired_stderr",
]  # fmt: skip
