"""`ablate recipe from-foundry`: a recipe from an llm-foundry training YAML.

ablate recipe from-foundry yamls/pretrain/mpt-125m.yaml --out recipes/mpt-125m.yaml
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ablate.cli.app import app, err, out
from ablate.errors import RecipeError

recipe_app = typer.Typer(help="Write a recipe from another tool's configuration.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("from-foundry")
def from_foundry_command(
    train_yaml: Annotated[Path, typer.Argument(help="llm-foundry training YAML, or an mcli run file holding one")],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the recipe here", show_default="print it")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists")] = False,
) -> None:
    """Translate what the YAML says (streams, model, tokenizer, optimizer, schedule, batch, duration,
    save folder); what has no counterpart is listed in comments. Then set the upsample mix and eval tasks."""
    from ablate.data.manifest import index_samples
    from ablate.data.shards import folder_tokens
    from ablate.foundry import from_foundry, render
    from ablate.recipe import parse_recipe, read_yaml

    try:
        text = train_yaml.read_text()
    except OSError as exc:
        raise RecipeError(f"{train_yaml}: cannot read it ({exc.strerror}); pass an existing llm-foundry YAML") from None
    raw = read_yaml(text, str(train_yaml))  # a repeated key is refused here as in a recipe
    if not isinstance(raw, dict):
        raise RecipeError(f"{train_yaml}: expected llm-foundry's mapping of fields at the top level")
    # llm-foundry (through Composer) names a run with a blank run_name by $RUN_NAME, as mcli sets it.
    recipe, notes = from_foundry(
        raw, name=train_yaml.stem, samples=index_samples, tokens=folder_tokens, run_name=os.environ.get("RUN_NAME")
    )
    parse_recipe(recipe, source=str(train_yaml))  # what is written must load
    text = render(recipe, notes, source=str(train_yaml))
    if out_path is None:
        out.print(text, end="", highlight=False, markup=False, soft_wrap=True)
        return
    if out_path.exists() and not force:
        raise RecipeError(f"--out {out_path}: exists; pass --force to overwrite it or choose another path")
    from ablate.study.store import write_atomic

    write_atomic(out_path, text)
    err.print(f"wrote {out_path} ({len(notes)} notes at the top to check); then `ablate plan --recipe {out_path}`")
