"""How a plan looks in the terminal: one row per variant, one column per subset."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ablate.names import phase_label
from ablate.plan.build import EPOCH_STRONG, EPOCH_WARN, Plan


def human(number: float) -> str:
    """1.6e12 → '1.6T': the scale a reader compares at a glance; beyond T, plain scientific."""
    if abs(number) >= 1e15:
        return f"{number:.2e}"
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= threshold:
            return f"{number / threshold:.3g}{suffix}"
    return f"{number:.3g}"


def _cell(proportion: float | None, epochs: float | None) -> str:
    if proportion is None:
        return "[dim]—[/dim]"
    text = f"{100 * proportion:.1f}%"
    if epochs is not None:
        colour = "red" if epochs > EPOCH_STRONG else "yellow" if epochs > EPOCH_WARN else "dim"
        text += f" [{colour}]{epochs:.2g}×[/{colour}]"
    return text


def _target_cost(plan: Plan) -> str:
    """The ladder's compute against one variant at the recipe's ladder.target (6·N·D there), if it has one."""
    target = (plan.recipe.get("ladder") or {}).get("target")
    if not target:
        return ""
    one = 6.0 * target["params"] * target["tokens"]
    return (
        f"Against one variant at the target ({human(target['params'])} params, {human(target['tokens'])} tokens: "
        f"{human(one)} FLOPs), the whole ladder costs {plan.study_flops / one:.3g} of it. "
    )


def render_plan(plan: Plan, out: Console, err: Console) -> None:
    """Subsets down, variants across (studies grow in variants); warnings and notes on `err`."""
    subsets = list(dict.fromkeys(s for v in plan.variants for s in v.mixture))
    table = Table(title=f"Study '{plan.study}': phase mixture (and passes over each subset)", title_justify="left")
    table.add_column("subset", style="bold")
    for v in plan.variants:
        table.add_column(v.name, justify="right", overflow="fold")
    for subset in subsets:
        table.add_row(subset, *(_cell(v.mixture.get(subset), v.epochs.get(subset)) for v in plan.variants))
    table.add_section()
    table.add_row("hash", *(f"[dim]{v.hash[:8]}[/dim]" for v in plan.variants))
    out.print(table)
    first = plan.variants[0]
    phases = {v.phase: v for v in plan.variants if v.phase is not None}
    # Where a phase starts is the recipe's figure: planning does not open the checkpoint to read its own.
    if phases:  # each phase trains its own length from its own start
        each = "; ".join(
            f"@{phase_label(p)}: {human(v.tokens)} tokens from {v.checkpoint} "
            f"(at {human(v.start_tokens)} tokens per the recipe)"
            for p, v in phases.items()
        )
        trains = f"Each variant trains, by phase, {each}. "
    elif plan.rungs:  # a ladder: every variant from every rung's start
        each = "; ".join(
            f"@{r.label}: {human(r.params)} params from {r.checkpoint}, "
            f"{human(sum(v.flops for v in plan.variants if v.params == r.params))} FLOPs"
            for r in plan.rungs
        )
        trains = f"Each variant trains {human(first.tokens)} tokens at every rung: {each}. {_target_cost(plan)}"
    else:
        start = first.checkpoint or "the start checkpoint (set with --checkpoint)"
        trains = (
            f"Each variant trains {human(first.tokens)} tokens ({human(first.flops)} FLOPs) from {start} "
            f"(at {human(first.start_tokens)} tokens per the recipe). "
        )
    replicates = plan.replicates()
    out.print(
        f"Model {human(plan.params)} params{' (the largest rung)' if plan.rungs else ''}. {trains}"
        f"Study: {len(plan.variants)} variants, {human(plan.study_tokens)} tokens, {human(plan.study_flops)} FLOPs "
        f"= {100 * plan.study_fraction:.1f}% of the full run ({human(plan.full_run_flops)} FLOPs, 6·N·D).",
        highlight=False,
    )
    if plan.power:
        figures = ", ".join(f"{t} {p.mde_pp:.1f}pp (n={p.items})" for t, p in plan.power.items())
        out.print(f"Smallest Δ each task detects (95% CI, 80% power, worst case p=0.5): {figures}", highlight=False)
    if replicates:
        out.print(
            f"Seed noise: {', '.join(replicates)} repeat{'s' if len(replicates) == 1 else ''} the baseline with "
            "another data order; the report adds the spread to every interval.",
            highlight=False,
        )
    if len({v.seed for v in plan.variants}) < 2:
        err.print(
            "[yellow]warning:[/yellow] no replicate run: the report's flags will hold for this one training run "
            "only; --baseline-seeds 2 adds one baseline run that measures seed noise",
            highlight=False,
        )
    for warning in plan.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
