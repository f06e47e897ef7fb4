"""Recipe: the YAML file that describes a study, validated on load.

    from ablate.recipe import load_recipe
    recipe = load_recipe("recipes/demo.yaml")

pydantic owns every default and every cross-field check; nothing downstream re-reads raw YAML.
Relative paths in a recipe resolve against the working directory, like `results/`.

    schema.py      Recipe: subsets, mixes and model, and the checks across sections
    training.py    training: the optimizer, the phase's LR schedule, FSDP
    evaluation.py  eval: lm-eval tasks, categories, held-out text
    ablations.py   ablations: the design, renormalization, seeds, phase lengths
    services.py    slurm: and loggers: (they change no result, so they are hashed nowhere)
    load.py        strict YAML in, one error line out
    section.py     the strict base every section shares

Nothing here imports torch, Composer, streaming or lm-eval: `ablate plan`, `report` and `--help` load it.
"""

from ablate.recipe.ablations import Ablations, Design
from ablate.recipe.evaluation import Category, Eval, HeldOut
from ablate.recipe.ladder import Ladder, RungSpec, TargetSpec
from ablate.recipe.load import DEMO_RECIPE, describe_errors, load_recipe, parse_recipe, read_yaml, recipe_path
from ablate.recipe.schema import Mixes, ModelSpec, Recipe, Subset
from ablate.recipe.services import Loggers, MLflow, Slurm, WandB
from ablate.recipe.training import BUILT_OPTIMIZERS, FOUNDRY_OPTIMIZERS, Fsdp, Optimizer, Schedule, Training

__all__ = [
    "BUILT_OPTIMIZERS",
    "DEMO_RECIPE",
    "FOUNDRY_OPTIMIZERS",
    "Ablations",
    "Category",
    "Design",
    "Eval",
    "Fsdp",
    "HeldOut",
    "Ladder",
    "Loggers",
    "MLflow",
    "Mixes",
    "ModelSpec",
    "Optimizer",
    "Recipe",
    "RungSpec",
    "Schedule",
    "Slurm",
    "Subset",
    "TargetSpec",
    "Training",
    "WandB",
    "describe_errors",
    "load_recipe",
    "parse_recipe",
    "read_yaml",
    "recipe_path",
]
