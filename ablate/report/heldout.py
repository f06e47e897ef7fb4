"""Held-out loss by domain: each ablation's Δ loss and Δ bits per byte against its baseline. Pure.

Every variant of a study is measured on the same held-out sequences (ablate.run.heldout), so a Δ
pairs them: per sequence, the mean over an ablation's done seeds of its loss minus the baseline's,
resampled over sequences by the same paired bootstrap as the task cells, plus the same seed term
from the study's replicates (ablate.report.noise): a seed moves a domain's loss far more than the
sequences' sampling does. Loss is nats per predicted token; lower is better, so a positive Δ means
the removal hurt. Bits per byte follow from the loss with the domain's fixed ratio of tokens to
bytes (the same text for every variant), so its Δ and interval are the loss's, rescaled.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from ablate import stats
from ablate.names import VariantName
from ablate.report.noise import Key, SeedNoise
from ablate.study.artifacts import HeldOut

LOSS_PREFIX = "loss:"  # how a domain's loss is named as a target of `ablate fit` and `ablate suggest`


@dataclass(frozen=True)
class LossCell:
    """One ablation on one domain: its loss, and against its baseline the Δ with its interval."""

    ablation: str
    domain: str
    loss: float  # nats per token, mean over the done seeds
    bits_per_byte: float | None
    sequences: int
    delta: float | None = None  # None on a baseline's own row
    low: float | None = None
    high: float | None = None
    delta_bpb: float | None = None
    bpb_low: float | None = None
    bpb_high: float | None = None


def loss_table(heldout: dict[str, HeldOut], variants: list[str]) -> dict[str, dict[str, float]]:
    """variant → loss:<domain> → its loss (nats per token): the held-out targets `ablate fit` reads."""
    return {
        v: {LOSS_PREFIX + d: found.loss for d, found in heldout[v].domains.items()} for v in variants if v in heldout
    }


def loss_cells(
    heldout: dict[str, HeldOut],
    levels: dict[str, list[str]],
    jobs: dict[str, list[str]],
    bases: dict[str, list[str]],
    *,
    ci: float,
    resamples: int,
    seed: int,
    noise: dict[Key, SeedNoise] | None = None,
) -> tuple[list[LossCell], list[str]]:
    """The loss of each baseline (`levels`: baseline ablation → its done seeds) and the Δ of each job
    (ablation → its done seeds) against `bases[ablation]`; notes on what could not be paired. `noise`:
    the seed noise of each (phase, loss:<domain>), added to the sequences' draws where known."""
    notes: list[str] = []
    cells = [_level(heldout, name, d, members) for name, members in levels.items() for d in _domains(heldout, members)]
    for ablation, done in jobs.items():
        base = bases.get(ablation) or []
        for domain in _domains(heldout, done + base) if done and base else []:
            prints = {heldout[v].domains[domain].fingerprint for v in done + base}
            if len(prints) > 1:
                notes.append(f"{ablation} × {LOSS_PREFIX}{domain}: held-out text differs from the baseline's, so no Δ")
                continue
            rng = np.random.default_rng([seed, zlib.crc32(ablation.encode()), zlib.crc32(domain.encode())])
            found = (noise or {}).get((VariantName.parse_ablation(ablation).label, LOSS_PREFIX + domain))
            cells.append(_delta(heldout, ablation, domain, done, base, rng, found, ci=ci, resamples=resamples))
    return cells, notes


def _domains(heldout: dict[str, HeldOut], variants: list[str]) -> list[str]:
    """Domains every one of `variants` was measured on, in the first one's order."""
    if not variants or any(v not in heldout for v in variants):
        return []
    first = heldout[variants[0]].domains
    return [d for d in first if all(d in heldout[v].domains for v in variants)]


def _per_token(heldout: dict[str, HeldOut], variants: list[str], domain: str) -> np.ndarray:
    """(variants × sequences) loss per token of each sequence."""
    rows = [heldout[v].domains[domain] for v in variants]
    return np.array([np.asarray(r.nll, dtype=float) * r.sequences / r.tokens for r in rows])


def _bpb_ratio(heldout: dict[str, HeldOut], variant: str, domain: str) -> float | None:
    """Bits per byte per nat-per-token on this domain's text: tokens / (bytes · ln 2)."""
    found = heldout[variant].domains[domain]
    return found.tokens / (found.bytes * math.log(2)) if found.bytes else None


def _level(heldout: dict[str, HeldOut], ablation: str, domain: str, members: list[str]) -> LossCell:
    loss = float(_per_token(heldout, members, domain).mean())
    ratio = _bpb_ratio(heldout, members[0], domain)
    sequences = heldout[members[0]].domains[domain].sequences
    return LossCell(ablation, domain, loss, None if ratio is None else loss * ratio, sequences)


def _delta(
    heldout: dict[str, HeldOut],
    ablation: str,
    domain: str,
    done: list[str],
    base: list[str],
    rng: np.random.Generator,
    noise: SeedNoise | None,
    *,
    ci: float,
    resamples: int,
) -> LossCell:
    variant, baseline = _per_token(heldout, done, domain), _per_token(heldout, base, domain)
    draws = stats.paired_bootstrap(variant, baseline, resamples=resamples, rng=rng)
    if noise is not None:
        draws = draws + stats.seed_term(noise.sd, noise.df, len(done), len(base), resamples=resamples, rng=rng)
    low, high = stats.percentile_interval(draws, ci)
    delta = float(variant.mean() - baseline.mean())
    ratio = _bpb_ratio(heldout, done[0], domain)
    loss = float(variant.mean())

    def scaled(x: float) -> float | None:
        return None if ratio is None else x * ratio

    return LossCell(
        ablation,
        domain,
        loss,
        scaled(loss),
        variant.shape[1],
        delta,
        low,
        high,
        scaled(delta),
        scaled(low),
        scaled(high),
    )
