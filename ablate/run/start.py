"""Where a run begins: the model and tokenizer, rebuilt from a checkpoint alone or from the recipe.

    from ablate.run.start import load_start, new_model
    start = load_start("results/demo/pretrain/checkpoints/latest-rank0.pt", weights=False)
    start.model, start.tokenizer, start.load_path, start.tokens

A start is a Composer checkpoint carrying Hugging Face metadata (what `HuggingFaceModel` and
llm-foundry save) in either of Composer's forms, one file (`state_dict_type: full`, or no FSDP) or
a sharded folder (torch.distributed.checkpoint: `.metadata` and one `__<rank>_0.distcp` per
process); a `save_pretrained` folder; or a fresh model from the recipe's config (the pretraining).
A start at a URI is read from the study's copy, fetched once per study (ablate.run.fetch).
A sharded checkpoint is read here in one process, only the parts asked for, which is what
evaluating a start or exporting a variant needs; training loads it sharded, through the Trainer.
Imports torch and transformers: only the training and evaluation jobs load it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from composer.models import HuggingFaceModel
from composer.utils import dist as composer_dist

from ablate.data.manifest import is_remote
from ablate.errors import AblateError
from ablate.plan.pickled import DCP_METADATA
from ablate.recipe import Recipe

LLMFOUNDRY_MPT = "llmfoundry.models.mpt.modeling_mpt"  # where llm-foundry's MPTForCausalLM lives
FSDP2_MODULE = "torch.distributed.fsdp._fully_shard._fully_shard"  # where FSDP2's wrapper classes live


@dataclass
class Start:
    """Where a run begins: the model and tokenizer, and what the Trainer must load on top."""

    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    load_path: str | None  # Composer checkpoint (weights, optimizer, timestamp); None: fresh optimizer
    tokens: int  # tokens the start has seen: the timestamp of a Composer checkpoint, 0 for a model folder
    optimizer: str | None = None  # class of the optimizer whose state a Composer checkpoint holds
    lr: float | None = None  # the LR that optimizer was at when the checkpoint was saved


def load_tokenizer(path: str) -> transformers.PreTrainedTokenizerBase:
    if not Path(path).is_dir():
        raise AblateError(f"tokenizer {path}: no such folder; run `ablate data demo` or point `tokenizer` at one")
    return transformers.AutoTokenizer.from_pretrained(path)


def new_model(recipe: Recipe) -> Start:
    """A freshly initialised model from the recipe's Hugging Face config, seeded by training.seed."""
    config = dict(recipe.model.config)
    if not config:  # a continuation takes its start checkpoint's model; a fresh one is built from the recipe's
        raise AblateError(
            "model.config: `ablate pretrain` builds a fresh model from it, and the recipe has none; add one "
            "(model_type: llama, hidden_size, num_hidden_layers, ...) or start from a checkpoint of your own"
        )
    if "model_type" not in config:
        raise AblateError("model.config: needs model_type (e.g. llama) to build a model; add it")
    tokenizer = load_tokenizer(recipe.tokenizer)
    hf_config = transformers.AutoConfig.for_model(**config)
    if hf_config.vocab_size < len(tokenizer):
        raise AblateError(
            f"model.config.vocab_size: {hf_config.vocab_size} is smaller than the tokenizer's {len(tokenizer)} "
            "tokens; raise it"
        )
    torch.manual_seed(recipe.training.seed)
    return Start(transformers.AutoModelForCausalLM.from_config(hf_config), tokenizer, None, 0)


def is_sharded(path: str | Path) -> bool:
    """A Composer sharded checkpoint: a folder (or Composer's link to one) holding DCP metadata."""
    return (Path(path) / DCP_METADATA).is_file()


def sharded_form(recipe: Recipe) -> bool:
    """Whether the recipe's jobs save, and so load, sharded checkpoints (training.fsdp.state_dict_type)."""
    return recipe.training.fsdp is not None and recipe.training.fsdp.state_dict_type == "sharded"


def in_form(path: str, recipe: Recipe, cache: Path) -> str:
    """The start checkpoint `path` in the form the Trainer loads under the recipe's sharding.

    Composer loads a sharded folder only into an FSDP model saving sharded checkpoints, and one
    file only otherwise. A start of the other form (a one-file pretraining continued sharded, a
    team's sharded checkpoint continued without FSDP) is converted once per checkpoint into
    `cache` with torch.distributed.checkpoint's format converters: the same state, laid out the
    other way. Rank 0 converts while the other ranks wait; a conversion cut short is redone (its
    leftover `.partial-<pid>` is never read).
    """
    from torch.distributed.checkpoint import format_utils

    from ablate.plan.identity import content_hash
    from ablate.run.dist import join_process_group, rank, world_size

    wants = sharded_form(recipe)
    if is_sharded(path) == wants:
        return path
    source = Path(path).resolve()
    stamp = (source / DCP_METADATA if is_sharded(source) else source).stat()
    key = content_hash([str(source), stamp.st_size, stamp.st_mtime_ns])
    target = cache / f"{source.stem}-{key}{'' if wants else '.pt'}"
    join_process_group()
    if rank() == 0 and not target.exists():
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")  # jobs run together convert apart
        cache.mkdir(parents=True, exist_ok=True)
        if wants:
            format_utils.torch_save_to_dcp(source, partial)
        else:
            format_utils.dcp_to_torch_save(source, partial)
        try:
            partial.rename(target)
        except OSError:  # another job's conversion of the same start landed first: the same bytes
            shutil.rmtree(partial, ignore_errors=True)
            partial.unlink(missing_ok=True)
    if world_size() > 1:
        composer_dist.barrier()
    return str(target)


def resume_problem(path: Path, recipe: Recipe) -> str | None:
    """Why a job cannot resume from its own checkpoint `path`: saved in the other form (the
    recipe's fsdp.state_dict_type changed since), or None."""
    if not path.exists() or is_sharded(path) == sharded_form(recipe):
        return None
    saved = "sharded" if is_sharded(path) else "full"
    fsdp = recipe.training.fsdp
    now = f"training.fsdp.state_dict_type: {fsdp.state_dict_type}" if fsdp else "no training.fsdp"
    return (
        f"{path}: this job's checkpoints are {saved}, but the recipe now has {now}; set "
        f"training.fsdp.state_dict_type: {saved} to resume them, or delete the job's folder to train it again"
    )


def load_start(path: str, *, weights: bool = True) -> Start:
    """Rebuild model and tokenizer from a checkpoint alone.

    Accepts a Composer checkpoint carrying Hugging Face metadata (as `HuggingFaceModel` and
    llm-foundry write them), one file or a sharded folder, or a `save_pretrained` folder, all local:
    a start at a URI is read from the study's copy, fetched once (ablate.run.fetch.local_start).
    With `weights=False` the weights are left for the Trainer's `load_path` to fill in.
    """
    if is_remote(path):  # fetched once per study, never once per job (ablate.run.fetch)
        raise AblateError(f"checkpoint {path}: a URI; load the study's copy (ablate.run.fetch.local_start)")
    local = Path(path)
    if local.is_dir() and not is_sharded(local):
        if not (local / "config.json").exists():
            raise AblateError(
                f"checkpoint {path}: a folder without config.json or {DCP_METADATA}; pass a Composer checkpoint "
                "(a file, or a sharded folder) or a Hugging Face save_pretrained folder"
            )
        return Start(_folder_model(local, path), load_tokenizer(str(local)), None, 0)
    if not local.exists():
        raise AblateError(f"checkpoint {path}: no such file; pass --checkpoint NAME|PATH to an existing one")
    try:
        state = _read_state(local, weights)
        hf_state = state["integrations"]["huggingface"]
        tokens = _tokens(state)
    except KeyError as exc:
        raise AblateError(
            f"checkpoint {path}: no {exc.args[0]!r} entry; it needs the Hugging Face metadata that "
            "composer.models.HuggingFaceModel saves (with a tokenizer), or pass a save_pretrained folder"
        ) from None
    except Exception as exc:
        raise AblateError(f"checkpoint {path}: cannot load it ({type(exc).__name__}: {exc})") from None
    with tempfile.TemporaryDirectory(prefix="ablate-tokenizer-") as tmp:
        tokenizer = HuggingFaceModel.load_huggingface_tokenizer_from_saved_state(hf_state, tokenizer_save_dir=tmp)
    if tokenizer is None:
        raise AblateError(
            f"checkpoint {path}: saved without a tokenizer; save it from HuggingFaceModel(model, tokenizer)"
        )
    model = _saved_model(hf_state["model"]["config"], path)
    if weights:
        model.load_state_dict({k.removeprefix("model."): v for k, v in state["model"].items()})
    optimizer, lr = _optimizer_at(state)
    return Start(model, tokenizer, str(local), tokens, optimizer, lr)


def checkpoint_tokens(path: str) -> int:
    """The tokens a local Composer checkpoint (one file or sharded) has seen, read off its timestamp
    without building its model: what tells a finished run from an interrupted one."""
    try:
        return _tokens(_read_state(Path(path), weights=False))
    except Exception as exc:
        raise AblateError(f"checkpoint {path}: cannot load it ({type(exc).__name__}: {exc})") from None


def _tokens(state: dict) -> int:
    timestamp = state["timestamp"]
    return int(timestamp.get("Timestamp", timestamp)["token"])


def _optimizer_at(state: dict) -> tuple[str | None, float | None]:
    """The class of the checkpoint's optimizer and the LR its first parameter group was at."""
    for name, saved in (state.get("optimizers") or {}).items():
        groups = saved.get("param_groups") or [{}]
        lr = groups[0].get("lr")
        return name, float(lr) if isinstance(lr, (int, float)) else None
    return None, None


def _read_state(local: Path, weights: bool) -> dict:
    """The checkpoint's `state`: Hugging Face metadata and timestamp, the optimizers' parameter
    groups (their LR), and the model's weights if asked.

    One file is memory-mapped whole. Of a sharded folder only those entries are read (never the
    optimizer's moments, twice the model's size), with torch's planner that rebuilds a state dict
    from the checkpoint's own metadata, in this one process.
    """
    if not is_sharded(local):
        return torch.load(local, map_location="cpu", weights_only=False, mmap=True)["state"]
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    # What torch's own dcp_to_torch_save does, limited to `parts`: the public dcp.load only fills
    # keys the caller's dict already has, and here the checkpoint's metadata says what there is.
    reader = dcp.FileSystemReader(str(local))
    keys = reader.read_metadata().state_dict_metadata
    optimizers = sorted({key.split(".")[2] for key in keys if key.startswith("state.optimizers.")})
    parts = [
        "state.integrations",
        "state.timestamp",
        *(f"state.optimizers.{name}.param_groups" for name in optimizers),
        *(["state.model"] if weights else []),
    ]
    saved: dict = {}
    _load_state_dict(saved, storage_reader=reader, planner=_EmptyStateDictLoadPlanner(keys=parts), no_dist=True)
    return saved["state"]


def _saved_model(saved: dict, path: str) -> transformers.PreTrainedModel:
    """An empty model of the class the checkpoint names, built from its own config class.

    Composer's loader rebuilds the config through AutoConfig by model_type, which for llm-foundry's
    MPT is transformers' MptConfig, not llm-foundry's MPTConfig that its MPTForCausalLM needs. The
    model class's own `config_class` is right for both.
    """
    module, _, name = str(saved["class"]).rpartition(".")
    if module == FSDP2_MODULE and name.startswith("FSDP"):
        # Composer records the class of the model it saves, which under FSDP2 is the wrapper torch
        # makes for it, FSDP<class>, in torch's own module: the model's class is a transformers one,
        # or llm-foundry's MPT.
        name = name.removeprefix("FSDP")
        module = "transformers" if hasattr(transformers, name) else LLMFOUNDRY_MPT
    model_class = _model_class(module, name, path)
    return model_class(model_class.config_class.from_dict(_here(dict(saved["content"]))))


def _folder_model(local: Path, path: str) -> transformers.PreTrainedModel:
    """A save_pretrained folder's model. Its config names the class (`architectures`); one that
    transformers does not have is llm-foundry's MPT (whose model_type `mpt` AutoModel would open
    as transformers' own, different MptForCausalLM), opened with its own config class."""
    architectures = json.loads((local / "config.json").read_text()).get("architectures") or []
    if not architectures or hasattr(transformers, architectures[0]):
        return transformers.AutoModelForCausalLM.from_pretrained(str(local))
    model_class = _model_class(LLMFOUNDRY_MPT, architectures[0], path)
    config = model_class.config_class.from_dict(_here(model_class.config_class.from_pretrained(str(local)).to_dict()))
    return model_class.from_pretrained(str(local), config=config)


def _model_class(module: str, name: str, path: str) -> type[transformers.PreTrainedModel]:
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "llmfoundry":
            raise AblateError(
                f"checkpoint {path}: its model is llm-foundry's {name}; install llm-foundry beside ablate "
                "(pip install 'ablate[foundry]')"
            ) from None
        raise AblateError(f"checkpoint {path}: cannot import its model class {module}.{name} ({exc})") from None
    except AttributeError:
        problem = f"{module} has no model class {name}; install the version that saved it"
        raise AblateError(f"checkpoint {path}: {problem}") from None


def _here(content: dict) -> dict:
    """llm-foundry's saved settings that only suit the machine that trained it, adapted to this one:
    weights built on the CPU (not `meta`), and flash attention replaced by the same attention in
    plain torch where flash-attn is absent."""
    if "init_device" in content:
        content["init_device"] = "cpu"
    attention = content.get("attn_config")
    flash = isinstance(attention, dict) and attention.get("attn_impl") == "flash"
    if flash and not importlib.util.find_spec("flash_attn"):
        content["attn_config"] = {**attention, "attn_impl": "torch"}  # type: ignore[dict-item]
    return content
