"""The model a study continues, read off its start checkpoint without torch, and the recipe checked against it.

    saved = read_start("ckpt/ep8-ba800-rank0.pt")       # its config, parameter count, optimizer class
    recipe = continued(recipe, saved)                    # a recipe naming no optimizer takes the checkpoint's
    check_start(recipe, saved, "start checkpoint `ckpt-800B`")     # one AblateError line, or nothing
    params = start_params(recipe, saved, "start checkpoint `ckpt-800B`")  # for the cost, 6·N·D

A continuation trains the checkpoint's own model (ablate.run.start rebuilds it from the checkpoint alone),
so with a start checkpoint the recipe's `model` section may be left out, or given in part: the parameter
count for the cost is the checkpoint's, and a field the recipe does give must be the checkpoint's. The
optimizer likewise: its state continues, which only the class that saved it can take over. `ablate plan`
and `ablate run` check through here, before any job; the checkpoint is read by ablate.plan.pickled.
Without a start checkpoint (`ablate pretrain` builds the model from `model.config`), the recipe's model is
counted by `count_params`.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ablate.data.manifest import is_remote
from ablate.errors import AblateError
from ablate.plan.pickled import DCP_METADATA, Tensor, read_archive, read_dcp
from ablate.recipe import Recipe
from ablate.recipe.training import OPTIMIZER_CLASSES

# Fields of a recipe's model.config that a continuation takes from its start checkpoint instead
# (Llama-style Hugging Face names, then llm-foundry MPT's); POSITIONS: the longest sequence it takes.
ARCHITECTURE = (
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings",
    "d_model", "n_layers", "n_heads", "expansion_ratio", "max_seq_len",
)  # fmt: skip
POSITIONS = ("max_position_embeddings", "max_seq_len")
RECIPE_NAMES = {saved: name for name, saved in OPTIMIZER_CLASSES.items()}  # class → the recipe name that builds it
KEEPS = "a continuation keeps the checkpoint's architecture"
MODEL = "state.model."  # a sharded checkpoint's weights: state.model.<name as in a one-file checkpoint>


@dataclass(frozen=True)
class SavedStart:
    """What a start checkpoint says about itself."""

    path: str
    config: dict[str, Any]  # its Hugging Face config (an llm-foundry MPT's own fields for an MPT)
    params: int | None  # parameters it trains, from its tensors' shapes; None where it holds none
    optimizer: str | None  # the class whose state it holds; None for a model folder (no state)


class Unread(NamedTuple):
    """A start checkpoint that cannot be read here, and why (a phrase that follows its path)."""

    path: str
    why: str


# ---- reading -------------------------------------------------------------------------------


def read_start(path: str) -> SavedStart | Unread:
    """The metadata of the start checkpoint at `path`: a Composer checkpoint with Hugging Face metadata
    (one file or a sharded folder) or a save_pretrained folder; Unread for a URI (plan fetches nothing)
    and for what neither writes (the job that opens it says what is wrong). Read once per version."""
    local = Path(path)
    if is_remote(path):
        return Unread(path, "is remote, and plan fetches nothing: its architecture is read once run fetches it")
    marker = local / DCP_METADATA if (local / DCP_METADATA).is_file() else local / "config.json"
    try:
        stamp = (marker if local.is_dir() else local).stat()
    except OSError as exc:
        return Unread(path, f"cannot be read ({exc.strerror})")
    return _read(path, stamp.st_mtime_ns, stamp.st_size)


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int) -> SavedStart | Unread:
    """`read_start` for one version of the checkpoint (plan and run check it more than once)."""
    local = Path(path)
    try:
        if (local / DCP_METADATA).is_file():
            entries, tensors = read_dcp(local, _wanted)
            model = {key.removeprefix(MODEL): t for key, t in tensors.items() if key.startswith(MODEL)}
            return _composer(path, entries["state"], model)
        if local.is_dir():
            return SavedStart(path, json.loads((local / "config.json").read_text()), _folder_params(local), None)
        state = read_archive(local)["state"]
        return _composer(path, state, {k: t for k, t in state["model"].items() if isinstance(t, Tensor)})
    except KeyError as exc:  # a Composer checkpoint of a model that is not a HuggingFaceModel
        return Unread(path, f"holds no {exc.args[0]!r} entry (the Hugging Face metadata a start needs)")
    except Exception as exc:  # not what Composer or save_pretrained writes: its job says what, with torch
        return Unread(path, f"cannot be read without torch ({type(exc).__name__}: {exc})")


def _wanted(key: str) -> bool:
    """The entries of a sharded checkpoint read here: its Hugging Face config, its optimizers' parameter groups."""
    optimizer = key.startswith("state.optimizers.") and ".param_groups." in key
    return optimizer or key.startswith("state.integrations.huggingface.model.")


def _composer(path: str, state: dict[str, Any], tensors: dict[str, Tensor]) -> SavedStart:
    """A Composer checkpoint's state: Hugging Face metadata as HuggingFaceModel saves it, optimizers by class."""
    optimizers = state.get("optimizers") or {}
    name = next(iter(optimizers), None)
    groups = optimizers[name]["param_groups"] if name else []
    trained = [p for group in _listed(groups) for p in group.get("params", [])]
    config = state["integrations"]["huggingface"]["model"]["config"]["content"]
    return SavedStart(path, dict(config), _count(tensors, trained), name)


def _listed(items: Any) -> list[Any]:
    """A saved list, or the same list from a sharded checkpoint (its items keyed by index)."""
    return list(items.values()) if isinstance(items, dict) else list(items)


def _count(tensors: dict[str, Tensor], trained: list[Any]) -> int | None:
    """Parameters: those the optimizer trains, where it names them (Composer saves their names), else each
    saved tensor once (tied weights view the same bytes in a file; a sharded one without names counts both)."""
    if trained and all(isinstance(name, str) and name in tensors for name in trained):
        return sum(t.numel for t in {tensors[name] for name in trained})
    return sum(t.numel for t in set(tensors.values())) or None


def _folder_params(folder: Path) -> int | None:
    """A save_pretrained folder's parameters: from its safetensors headers, else its pytorch_model*.bin."""
    tensors: dict[str, Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as stream:
            (length,) = struct.unpack("<Q", stream.read(8))  # the header: 8 bytes of length, then JSON
            header = json.loads(stream.read(length))
        shapes = {key: entry["shape"] for key, entry in header.items() if key != "__metadata__"}
        tensors |= {f"{file.name}:{key}": Tensor(tuple(shape), f"{file.name}:{key}") for key, shape in shapes.items()}
    for file in [] if tensors else sorted(folder.glob("pytorch_model*.bin")):
        tensors |= {key: t for key, t in read_archive(file).items() if isinstance(t, Tensor)}
    return _count(tensors, [])


# ---- what the recipe takes from it ---------------------------------------------------------


def continued(recipe: Recipe, saved: SavedStart | Unread | None) -> Recipe:
    """The recipe as it continues `saved`: one that names no optimizer (no training.optimizer.name) takes
    the class whose state the checkpoint holds, which only that class can continue. A class ablate knows
    by no name (a plugin's) is left to the run, which asks llm-foundry's registry."""
    spec = recipe.training.optimizer
    if not isinstance(saved, SavedStart) or "name" in spec.model_fields_set or spec.state == "fresh":
        return recipe
    named = RECIPE_NAMES.get(saved.optimizer or "")
    if named is None or named == spec.name:
        return recipe
    training = recipe.training.model_copy(update={"optimizer": spec.model_copy(update={"name": named})})
    return recipe.model_copy(update={"training": training})


def start_params(recipe: Recipe, saved: SavedStart | Unread | None, source: str) -> int | None:
    """The start checkpoint's parameter count for the cost where the recipe gives none (model.params wins);
    None where the recipe's model.config is counted instead: without a start yet, or one that cannot be
    read here (then that config must be countable, and the message says why the checkpoint was not read)."""
    if recipe.model.params is not None or saved is None:
        return None
    if isinstance(saved, SavedStart) and saved.params:
        return saved.params
    try:
        count_params(recipe.model.config)
    except AblateError as exc:
        why = saved.why if isinstance(saved, Unread) else "holds no weights to count"
        raise AblateError(f"{exc} ({source} at {saved.path} {why})") from None
    return None


def check_start(recipe: Recipe, saved: SavedStart | Unread, source: str) -> None:
    """Refuse, in one line, a recipe that contradicts its start checkpoint, which is what trains (a study
    would otherwise report on another model than its recipe says): a model field of another value, or one
    the checkpoint's model does not have (another family's: an MPT has d_model, not hidden_size); a seq_len
    past its positions; an optimizer of another class than the one whose state it holds. A checkpoint that
    cannot be read here is left to the job that opens it."""
    if isinstance(saved, Unread):
        return
    where, given, has = f"{source} at {saved.path}", recipe.model.config, saved.config
    for field in (f for f in ARCHITECTURE if f in given):
        if field not in has:
            own = ", ".join(f"{f}: {has[f]}" for f in ARCHITECTURE if f in has)
            raise AblateError(
                f"model.config.{field}: {where} has no {field} (its model: {own}); leave it out ({KEEPS}), "
                "or start from another"
            )
        if given[field] != has[field]:
            raise AblateError(
                f"model.config.{field}: the recipe says {given[field]}, {where} has {has[field]}; set it to the "
                f"checkpoint's value or leave it out ({KEEPS}), or start from another"
            )
    longest = next((has[field] for field in POSITIONS if isinstance(has.get(field), int)), None)
    if longest is not None and recipe.seq_len > longest:
        raise AblateError(
            f"seq_len: the recipe says {recipe.seq_len}, {where} takes at most {longest} positions; "
            "lower seq_len or start from a model with more positions"
        )
    spec = recipe.training.optimizer
    builds, named = OPTIMIZER_CLASSES.get(spec.name), RECIPE_NAMES.get(saved.optimizer or "")
    if saved.optimizer and spec.state != "fresh" and builds and named and builds != saved.optimizer:
        raise AblateError(optimizer_refusal(saved.path, saved.optimizer, spec.name, builds, named))


def optimizer_refusal(path: str, saved: str, name: str, builds: str, named: str | None) -> str:
    """Why a start's optimizer state cannot continue under the recipe's optimizer, with the fix: Composer
    keys the state by the class that saved it, and no other class can take it over. Plan refuses with it
    where it knows both classes by name; the job refuses with it whatever the classes."""
    fix = f"set training.optimizer.name: {named}" if named else f"ablate builds no {saved}"
    return (
        f"start checkpoint {path}: holds {saved} state, but training.optimizer.name {name} builds {builds}; {fix} "
        "to continue that state, or set training.optimizer.state: fresh to keep the weights and start the "
        "optimizer anew"
    )


# ---- counting ------------------------------------------------------------------------------


def count_params(config: dict[str, Any]) -> int:
    """Parameters of a Llama-style decoder from its Hugging Face config, without building it."""
    try:
        h = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        vocab = int(config["vocab_size"])
    except KeyError as exc:
        raise AblateError(
            f"model.config: needs {exc.args[0]} to count parameters; add it or set model.params"
        ) from None
    inter = int(config.get("intermediate_size", 4 * h))
    heads = int(config.get("num_attention_heads", max(1, h // 64)))
    kv_heads = int(config.get("num_key_value_heads", heads))
    kv_dim = h // heads * kv_heads
    attention = 2 * h * h + 2 * h * kv_dim
    mlp = 3 * h * inter
    per_layer = attention + mlp + 2 * h
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings", False) else 2)
    return layers * per_layer + embeddings + h
