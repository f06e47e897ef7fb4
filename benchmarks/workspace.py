"""What the benchmarks that train or evaluate share: the environment, a scratch folder holding the
demo's data, and a start checkpoint written by ablate itself.

Import it before torch, datasets or lm-eval: it sets what they read at import time (offline, one
torch thread unless OMP_NUM_THREADS says otherwise, no progress bars, a datasets cache inside the
scratch folder so nothing lands in ~/.cache, and results/ inside the scratch folder, never the
repository's).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Shared with child processes (a job forked by the local launcher re-imports the benchmark script);
# the process that creates it removes it at exit.
if "ABLATE_BENCH_SCRATCH" in os.environ:
    SCRATCH = Path(os.environ["ABLATE_BENCH_SCRATCH"])
else:
    SCRATCH = Path(tempfile.mkdtemp(prefix="ablate-bench-"))
    os.environ["ABLATE_BENCH_SCRATCH"] = str(SCRATCH)
    atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models on shared cores: 2 threads can be 10× slower
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ["TQDM_DISABLE"] = "1"  # progress bars that take tqdm's defaults (lm-eval passes its own)
os.environ["HF_DATASETS_CACHE"] = str(SCRATCH / "hf-datasets")
os.environ.pop("ABLATE_RESULTS", None)  # results/ resolves inside the scratch folder
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablate.recipe import Recipe  # noqa: E402


@contextmanager
def demo_workspace(recipe: Recipe | None = None) -> Iterator[Recipe]:
    """The demo's raw data, tasks, tokenizer and shards in SCRATCH, entered as the working directory
    (recipe paths resolve against it); the folder is removed afterwards.

    Inside, stderr (the libraries' warnings and progress bars) goes to a log; its tail is shown if
    something fails, so the tables stay readable in `make bench`.
    """
    from ablate.data.build import build_subsets
    from ablate.demo.corpus import write_demo
    from ablate.demo.study import demo_recipe, working_directory

    recipe = recipe or demo_recipe()
    log = SCRATCH / "stderr.log"
    sys.stderr.flush()
    stderr = os.dup(2)
    try:
        with log.open("ab") as handle:
            os.dup2(handle.fileno(), 2)
        with working_directory(SCRATCH):
            write_demo(Path("."))
            build_subsets(recipe)
            yield recipe
    except BaseException:
        sys.stderr.flush()
        os.dup2(stderr, 2)
        tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
        print("\n".join(["--- last lines of the libraries' stderr:", *tail, "---"]), file=sys.stderr)
        raise
    finally:
        sys.stderr.flush()
        os.dup2(stderr, 2)
        os.close(stderr)
        shutil.rmtree(SCRATCH, ignore_errors=True)


def start_checkpoint(recipe: Recipe, folder: Path, steps: int = 4) -> str:
    """A Composer checkpoint after `steps` steps on the base mix, written by `ablate.run.train.fit` as
    `ablate pretrain` writes one; returns its path."""
    from ablate.plan.build import normalize
    from ablate.run import train
    from ablate.run.start import new_model

    end = steps * recipe.training.batch_size * recipe.seq_len
    train.fit(
        new_model(recipe), recipe, mixture=normalize(recipe.mixes.base), seed=recipe.training.seed,
        folder=folder, run_name="bench-start", schedule=train.pretrain_schedule(recipe), end_tokens=end,
    )  # fmt: skip
    return str(folder / "checkpoints" / "latest-rank0.pt")


def machine() -> str:
    """Cores and load: timings on a shared machine mean little without them."""
    return f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
