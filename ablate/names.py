"""A variant's name: the one grammar the plan writes and run, report and analyze read back. Pure.

    name     := ablation [".s" seed]   seed: the replicate's data-order seed, in decimal digits
    ablation := base ["@" label]       a variant planned with one seed is named by its ablation alone
    label    := ("p" | "r") number     p10: a phase, the run's last 10%; r2: a ladder's rung (r1 the smallest)
    number   := digits, with at most one "." among them

    VariantName.parse("no-math@p10.s2")          # VariantName(base='no-math', label='p10', seed=2)
    VariantName.parse_ablation("pretrained@p10") # no seed read: an ablation's or a checkpoint's name
    str(VariantName("no-math", "p10", 2))        # 'no-math@p10.s2'

A name is read from the right: a trailing `.s<digits>` is the seed, then a trailing `@` and a label;
everything else is the base, so 'a@b', 'x@p' and 'x@p1.5.5' are bases without a label. A base may
itself end in a label: a phase study's variant as a ladder's rung reads no@p10@r1 (base no@p10). For
every name whose seed is written as the plan writes it (ASCII, no leading zero), str(parse(name)) == name.
The plan's own bases hold no '@' (ablate.plan.identity.check_name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

SCALE_MARK = "@"  # no-math@p10: the no-math variant over the run's last 10%; no-math@r2: at a ladder's rung 2
SEED_MARK = ".s"  # baseline.s1: the baseline's replicate of data-order seed 1
_SEEDED = re.compile(rf"^(?P<ablation>.+){re.escape(SEED_MARK)}(?P<seed>\d+)$")


def phase_label(phase: float) -> str:
    """0.1 → 'p10': the label of a phase study's phase, in percent of the run."""
    return f"p{round(100 * phase, 6):g}"


def rung_label(index: int) -> str:
    """The label of a ladder's rung at `index` (0: the smallest): r1, r2, ..."""
    return f"r{index + 1}"


def label_value(label: str) -> float:
    """'p12.5' → 12.5, 'r2' → 2.0: the number a label orders by (a phase's percent, a rung's place)."""
    return float(label[1:])


def _is_label(text: str) -> bool:
    return text[:1] in ("p", "r") and text[1:].replace(".", "", 1).isdigit()


@dataclass(frozen=True)
class VariantName:
    """A name's parts: the base (an arm of the plan: baseline, no-math, a start checkpoint's name), the
    scale label it is at (a phase or a ladder's rung) or None, and the replicate's seed or None."""

    base: str
    label: str | None = None
    seed: int | None = None

    @classmethod
    def parse(cls, name: str) -> VariantName:
        """A variant's (or its folder's) name: 'no-math@p10.s2' → ('no-math', 'p10', 2)."""
        seeded = _SEEDED.match(name)
        if seeded is None:
            return cls.parse_ablation(name)
        return replace(cls.parse_ablation(seeded["ablation"]), seed=int(seeded["seed"]))

    @classmethod
    def parse_ablation(cls, ablation: str) -> VariantName:
        """A name that carries no seed (an ablation, a start checkpoint's name): 'no-math@p10' →
        ('no-math', 'p10'); a trailing '.s1' stays in the base, as does anything after '@' but a label."""
        head, mark, label = ablation.rpartition(SCALE_MARK)
        if mark and _is_label(label):
            return cls(head, label)
        return cls(ablation)

    def __str__(self) -> str:
        ablation = self.base if self.label is None else f"{self.base}{SCALE_MARK}{self.label}"
        return ablation if self.seed is None else f"{ablation}{SEED_MARK}{self.seed}"

    def at(self, label: str | None) -> VariantName:
        """This name at the scale `label`, marked after any label it has (no@p10.s1 at r1 → no@p10@r1.s1:
        a phase study as a ladder's rung); itself at None."""
        return self if label is None else VariantName(str(self.without_seed()), label, self.seed)

    def without_seed(self) -> VariantName:
        """The name's ablation: 'no-math@p10.s2' → 'no-math@p10'."""
        return replace(self, seed=None)
