"""Where a run begins: the model and tokenizer, rebuilt from a checkpoint alone or from the recipe.

    from ablate.run.start import load_start, new_model
    start = load_start("results/demo/pretrain/checkpoints/latest-rank0.pt", weights=False)
    start.model, start.tokenizer, start.load_path, start.tokens

A start is a Composer checkpoint carrying Hugging Face metadata (what `HuggingFaceModel` and
llm-foundry save), a `save_pretrained` folder, or a fresh model from the recipe's config (the
pretraining). Imports torch and transformers: only the training and evaluation jobs load it.
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from composer.models import HuggingFaceModel
from composer.utils import get_file

from ablate.data.manifest import is_remote
from ablate.errors import AblateError
from ablate.recipe import Recipe


@dataclass
class Start:
    """Where a run begins: the model and tokenizer, and what the Trainer must load on top."""

    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    load_path: str | None  # Composer checkpoint (weights, optimizer, timestamp); None: fresh optimizer
    tokens: int  # tokens the start has seen: the timestamp of a Composer checkpoint, 0 for a model folder


def load_tokenizer(path: str) -> transformers.PreTrainedTokenizerBase:
    if not Path(path).is_dir():
        raise AblateError(f"tokenizer {path}: no such folder; run `ablate data demo` or point `tokenizer` at one")
    return transformers.AutoTokenizer.from_pretrained(path)


def new_model(recipe: Recipe) -> Start:
    """A freshly initialised model from the recipe's Hugging Face config, seeded by training.seed."""
    config = dict(recipe.model.config)
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


def load_start(path: str, *, weights: bool = True) -> Start:
    """Rebuild model and tokenizer from a checkpoint alone.

    Accepts a Composer checkpoint carrying Hugging Face metadata (as `HuggingFaceModel` and
    llm-foundry write them) or a `save_pretrained` folder. A URI (s3://, gs://, hf://, ...) is
    fetched once into a temporary folder, which the Trainer then loads from. With `weights=False`
    the weights are left for the Trainer's `load_path` to fill in.
    """
    local = Path(path)
    if is_remote(path):
        local = Path(tempfile.mkdtemp(prefix="ablate-ckpt-")) / Path(path).name
        try:
            get_file(path, str(local))
        except Exception as exc:
            raise AblateError(f"checkpoint {path}: cannot fetch it ({exc}); check the URI and credentials") from None
    if local.is_dir():
        if not (local / "config.json").exists():
            raise AblateError(
                f"checkpoint {path}: a folder without config.json; pass a Composer checkpoint file or a "
                "Hugging Face save_pretrained folder"
            )
        model = transformers.AutoModelForCausalLM.from_pretrained(str(local))
        return Start(model, load_tokenizer(str(local)), None, 0)
    if not local.exists():
        raise AblateError(f"checkpoint {path}: no such file; pass --checkpoint NAME|PATH to an existing one")
    try:
        saved = torch.load(local, map_location="cpu", weights_only=False, mmap=True)
        hf_state = saved["state"]["integrations"]["huggingface"]
        timestamp = saved["state"]["timestamp"]
        tokens = int(timestamp.get("Timestamp", timestamp)["token"])
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
        model.load_state_dict({k.removeprefix("model."): v for k, v in saved["state"]["model"].items()})
    return Start(model, tokenizer, str(local), tokens)


def _saved_model(saved: dict, path: str) -> transformers.PreTrainedModel:
    """An empty model of the class the checkpoint names, built from its own config class.

    Composer's loader rebuilds the config through AutoConfig by model_type, which for llm-foundry's
    MPT is transformers' MptConfig, not llm-foundry's MPTConfig that its MPTForCausalLM needs. The
    model class's own `config_class` is right for both. llm-foundry's saved settings that only
    suit the machine that trained it are adapted: weights are built on the CPU (not `meta`), and
    its flash attention falls back to the same attention in plain torch where flash-attn is absent.
    """
    module, _, name = str(saved["class"]).rpartition(".")
    try:
        model_class = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "llmfoundry":
            raise AblateError(
                f"checkpoint {path}: its model is llm-foundry's {name}; install llm-foundry beside ablate "
                "(pip install 'ablate[foundry]')"
            ) from None
        raise AblateError(f"checkpoint {path}: cannot import its model class {saved['class']} ({exc})") from None
    except AttributeError:
        problem = f"{module} has no model class {name}; install the version that saved it"
        raise AblateError(f"checkpoint {path}: {problem}") from None
    content = dict(saved["content"])
    if "init_device" in content:
        content["init_device"] = "cpu"
    attention = content.get("attn_config")
    flash = isinstance(attention, dict) and attention.get("attn_impl") == "flash"
    if flash and not importlib.util.find_spec("flash_attn"):
        content["attn_config"] = {**attention, "attn_impl": "torch"}  # type: ignore[dict-item]
    return model_class(model_class.config_class.from_dict(content))
