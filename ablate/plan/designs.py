"""Designs beyond leave-one-out: a swarm of random mixtures around the baseline's, or each subset's
weight perturbed up and down; every mixture held to the subsets' max_passes caps. Pure and seeded.

    caps = share_caps(recipe, sizes, phase_tokens)
    swarm(upsample, Design(kind="swarm", n=16), caps)      # 16 Dirichlet draws centred on the upsample mix
    perturbed(upsample, Design(kind="perturb"), caps)      # up-<subset> and down-<subset> per subset
"""

from __future__ import annotations

import numpy as np

from ablate.errors import AblateError
from ablate.plan.mixtures import normalize
from ablate.recipe import Design, Recipe


def share_caps(recipe: Recipe, sizes: dict[str, int], phase_tokens: int) -> dict[str, float]:
    """The largest share of the phase each capped subset may take: max_passes × its tokens / the
    phase's tokens (subsets without a cap, or of unknown size, are not capped)."""
    return {
        name: spec.max_passes * sizes[name] / phase_tokens
        for name, spec in recipe.subsets.items()
        if spec.max_passes is not None and name in sizes
    }


def capped(mixture: dict[str, float], caps: dict[str, float], what: str) -> dict[str, float]:
    """`mixture` with every share held to its cap, the excess handed to the uncapped subsets in
    proportion (repeated until none is over); one line when the caps leave no room for it."""
    shares = dict(mixture)
    held: set[str] = set()
    while True:
        over = {s for s, p in shares.items() if s not in held and p > caps.get(s, 1.0) + 1e-12}
        if not over:
            return shares
        held |= over
        for subset in over:
            shares[subset] = caps[subset]
        free = [s for s in shares if s not in held]
        room = 1.0 - sum(shares[s] for s in held)
        total = sum(shares[s] for s in free)
        if not free or total <= 0 or room <= 0:
            raise AblateError(
                f"{what}: the subsets' max_passes caps hold the mixture below 100% of the phase; raise a "
                "cap or shorten the phase"
            )
        for subset in free:
            shares[subset] *= room / total


def swarm(center: dict[str, float], design: Design, caps: dict[str, float]) -> list[dict[str, float]]:
    """design.n mixtures drawn from a Dirichlet whose mean is `center` (concentration α: each share
    has variance p(1−p)/(α+1)), seeded; draws that break a cap are drawn again."""
    rng = np.random.default_rng(design.seed)
    names = list(center)
    alpha = design.concentration * np.array([center[name] for name in names])
    mixtures: list[dict[str, float]] = []
    for _ in range(1_000 * design.n):
        draw = rng.dirichlet(alpha)
        if all(share <= caps.get(name, 1.0) for name, share in zip(names, draw, strict=True)):
            mixtures.append({name: float(share) for name, share in zip(names, draw, strict=True)})
            if len(mixtures) == design.n:
                return mixtures
    raise AblateError(
        f"--design swarm: fewer than {design.n} of {1_000 * design.n:,} draws keep every subset under its "
        "max_passes; raise the caps or --concentration"
    )


def perturbed(center: dict[str, float], design: Design, caps: dict[str, float]) -> list[tuple[str, dict[str, float]]]:
    """Each subset's weight × factor (`up-<subset>`) and ÷ factor (`down-<subset>`), renormalized
    and held to the caps."""
    arms = []
    for subset in center:
        for name, scale in ((f"up-{subset}", design.factor), (f"down-{subset}", 1 / design.factor)):
            weights = {s: p * (scale if s == subset else 1.0) for s, p in center.items()}
            arms.append((name, capped(normalize(weights), caps, f"--design perturb ({name})")))
    return arms
