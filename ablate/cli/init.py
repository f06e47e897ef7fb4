"""`ablate init`: a folder for a study of your own text: recipe, task template, tokenizer.

ablate init mystudy --text web.jsonl --text code.jsonl      # trains a byte-level BPE tokenizer on them
ablate init mystudy --text 'papers/*.txt' --tokenizer /models/tok   # your tokenizer, not a new one
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablate.cli.app import app, err, out


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to write recipe.yaml, tasks/ and tokenizer/ into")],
    text: Annotated[
        list[str] | None,
        typer.Option(
            "--text",
            help="Raw text of one subset: JSONL (a `text` field a line) or files, a path or a glob; named "
            "after the file. Repeat for each subset",
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option("--tokenizer", help="A local Hugging Face tokenizer folder to use instead of training one"),
    ] = None,
    vocab_size: Annotated[
        int, typer.Option("--vocab-size", help="Vocabulary of the trained tokenizer (bytes included)")
    ] = 512,
    name: Annotated[str | None, typer.Option("--name", help="Study name", show_default="the folder's name")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write over the folder's recipe.yaml")] = False,
) -> None:
    """Write a recipe, a multiple-choice task template and a tokenizer for a study of your own text."""
    from ablate.init import init_study

    written = init_study(folder, text or [], tokenizer=tokenizer, vocab_size=vocab_size, name=name, force=force)
    for path in written:
        out.print(f"wrote {path}{'/' if path.is_dir() else ''}", highlight=False, soft_wrap=True)
    err.print(
        f"next, in {folder}: put your items in tasks/, then `ablate data build --recipe recipe.yaml`, "
        "`ablate pretrain --recipe recipe.yaml`, `ablate plan --recipe recipe.yaml`, `ablate run`, `ablate report`",
        highlight=False,
        soft_wrap=True,
    )
