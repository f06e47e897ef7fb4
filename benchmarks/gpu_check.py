"""GPU check for sharded training: throughput and MFU, a 7B's memory, evaluation throughput.

    python benchmarks/gpu_check.py           # one GPU, about 6 minutes (run through the device tool)
    python benchmarks/gpu_check.py --tiny    # CPU, about a minute: the same code on a tiny Llama (CI runs it)

(a) train   a ~1B Llama (width 2048, 16 layers, sequence 2048) in bf16, trained by Composer's Trainer
            with ablate's FSDP2 settings (`ablate.run.train.parallelism`: one shard unit per decoder
            layer) and by a plain Composer Trainer (no FSDP), on the same initial weights and the same
            in-memory batches, alternating A B A B after a warm-up: tokens/s, MFU (6·N FLOPs per token
            over the GPU's dense bf16 peak; attention's own FLOPs left out), and their ratio.
(b) memory  a 7B Llama (width 4096, 32 layers, sequence 4096) with FSDP2 and activation checkpointing,
            microbatch 1, a few steps: peak allocated GPU memory, and whether it fit at all.
(c) eval    lm-eval's hf backend on the 1B saved with save_pretrained, a synthetic 4-choice task:
            items/s; the same with vLLM where it is installed (an optional extra, never required).
(d) worker  ablate's own evaluation of a variant on that folder: opened by ablate.run.start.load_start,
            lm-eval through ablate.run.evaluate (HFLM on the model in memory) and the held-out loss
            (ablate.run.heldout) on random sequences: the device each ran on, items/s, tokens/s.

On one GPU FSDP2 shards over a world of one: (a) measures what its wrapping costs, not what
sharding saves; (b) shows whether a 7B's whole training state fits one GPU without any sharding
help. The last line is `gpu_check: fsdp2 / plain tokens per second ratio = X`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch  # noqa: E402  (after workspace: it sets the environment torch and lm-eval read at import)
import transformers  # noqa: E402
from composer import Trainer  # noqa: E402
from composer.models import HuggingFaceModel  # noqa: E402
from composer.optim import DecoupledAdamW  # noqa: E402
from workspace import SCRATCH, machine

from ablate.recipe import Fsdp  # noqa: E402
from ablate.run.train import parallelism  # noqa: E402

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}  # dense, from NVIDIA's data sheets


@dataclass(frozen=True)
class Size:
    width: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    seq: int
    batch: int  # sequences per step (one microbatch)
    steps: int

    def config(self) -> transformers.LlamaConfig:
        return transformers.LlamaConfig(
            hidden_size=self.width, num_hidden_layers=self.layers, num_attention_heads=self.heads,
            num_key_value_heads=self.heads, intermediate_size=self.ffn, vocab_size=self.vocab,
            max_position_embeddings=self.seq, tie_word_embeddings=False,
        )  # fmt: skip


ONE_B = Size(width=2048, layers=16, heads=16, ffn=5632, vocab=32000, seq=2048, batch=8, steps=40)
SEVEN_B = Size(width=4096, layers=32, heads=32, ffn=11008, vocab=32000, seq=4096, batch=1, steps=3)
TINY = Size(width=64, layers=2, heads=4, ffn=128, vocab=128, seq=64, batch=8, steps=8)


def model_of(size: Size, device: str) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    with torch.device(device):
        return transformers.LlamaForCausalLM(size.config())


def batches(size: Size, count: int, device: str) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    out = []
    for _ in range(count):
        ids = torch.randint(0, size.vocab, (size.batch, size.seq), generator=generator)
        out.append({"input_ids": ids.to(device), "labels": ids.to(device)})
    return out


def trainer(size: Size, device: str, fsdp: Fsdp | None, data: list) -> Trainer:
    model = model_of(size, device)
    return Trainer(
        model=HuggingFaceModel(model, use_logits=True, metrics=[]),
        train_dataloader=data,
        max_duration=f"{len(data)}ba",
        optimizers=DecoupledAdamW(model.parameters(), lr=1e-4),
        parallelism_config=parallelism(fsdp, model),
        precision="amp_bf16" if device == "cuda" else "fp32",
        device="gpu" if device == "cuda" else "cpu",
        device_train_microbatch_size=size.batch,
        progress_bar=False,
        log_to_console=False,
    )


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_speed(size: Size, device: str, repeats: int) -> dict[str, float]:
    """Median tokens/s of each path over `repeats` alternating timed runs of size.steps steps."""
    warm = 3
    runs: dict[str, list[float]] = {"fsdp2": [], "plain": []}
    for _ in range(repeats):
        for name, fsdp in (("fsdp2", Fsdp()), ("plain", None)):
            data = batches(size, warm + size.steps, device)
            run = trainer(size, device, fsdp, data)
            run.fit(duration=f"{warm}ba")
            sync(device)
            tick = time.perf_counter()
            run.fit(duration=f"{size.steps}ba")
            sync(device)
            runs[name].append(size.steps * size.batch * size.seq / (time.perf_counter() - tick))
            run.close()
            del run
            if device == "cuda":
                torch.cuda.empty_cache()
    return {name: sorted(values)[len(values) // 2] for name, values in runs.items()}


def memory(size: Size, device: str) -> str:
    """Peak GPU memory of a few FSDP2 + activation-checkpointing steps, or why it did not fit."""
    if device != "cuda":
        run = trainer(size, device, Fsdp(activation_checkpointing=True), batches(size, size.steps, device))
        run.fit()
        run.close()
        return "ran (peak GPU memory: no GPU)"
    torch.cuda.reset_peak_memory_stats()
    try:
        run = trainer(size, device, Fsdp(activation_checkpointing=True), batches(size, size.steps, device))
        run.fit()
        sync(device)
        run.close()
    except torch.cuda.OutOfMemoryError:
        return f"did not fit: out of memory ({torch.cuda.max_memory_allocated() / 2**30:.1f} GiB allocated at peak)"
    total = torch.cuda.get_device_properties(0).total_memory
    peak = torch.cuda.max_memory_allocated()
    return f"fit: peak {peak / 2**30:.1f} GiB of {total / 2**30:.1f} GiB"


def eval_speed(size: Size, device: str, items: int) -> dict[str, float | str]:
    """Items/s of lm-eval on the model saved as a Hugging Face folder: hf, and vLLM where installed."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from ablate.demo.corpus import write_tokenizer

    folder, tasks = SCRATCH / "model", SCRATCH / "tasks"
    write_tokenizer(folder)
    model_of(size, "cpu").save_pretrained(folder)
    tasks.mkdir(exist_ok=True)
    generator = torch.Generator().manual_seed(2)
    letters = "abcdefghij"
    rows = []
    for _ in range(items):
        picks = torch.randint(0, len(letters), (4, 8), generator=generator).tolist()
        words = ["".join(letters[i] for i in pick) for pick in picks]
        rows.append({"context": " ".join(words) + " ?", "choices": words, "answer": 0})
    (tasks / "check.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tasks / "check.yaml").write_text(
        "task: gpu_check\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {tasks / 'check.jsonl'}}}}}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{context}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: answer\n"
        "metric_list: [{metric: acc, aggregation: mean, higher_is_better: true}]\n"
    )
    manager = TaskManager(include_path=[str(tasks)], include_defaults=False)
    dtype = "bfloat16" if device == "cuda" else "float32"
    backends = {"hf": f"pretrained={folder},tokenizer={folder},dtype={dtype},max_length={size.seq}"}
    if device == "cuda" and importlib.util.find_spec("vllm"):
        backends["vllm"] = f"pretrained={folder},tokenizer={folder},dtype={dtype},max_model_len={size.seq}"
    out: dict[str, float | str] = {}
    for backend, args in backends.items():
        tick = time.perf_counter()
        simple_evaluate(model=backend, model_args=args, tasks=["gpu_check"], task_manager=manager,
                        batch_size=32, device="cuda" if device == "cuda" else "cpu")  # fmt: skip
        out[backend] = items / (time.perf_counter() - tick)
    if "vllm" not in backends:
        out["vllm"] = "not installed (pip install vllm on a GPU machine; ablate never requires it)"
    return out


def worker_eval(size: Size, items: int, sequences: int) -> str:
    """(d): the folder (c) saved, evaluated the way a variant's job does it."""
    import numpy as np
    from streaming import MDSWriter

    from ablate.recipe import Eval
    from ablate.run.evaluate import evaluate
    from ablate.run.heldout import heldout_loss
    from ablate.run.start import load_start

    folder, tasks, held = SCRATCH / "model", SCRATCH / "tasks", SCRATCH / "heldout"
    ids = np.random.default_rng(3).integers(0, 90, size=(sequences, size.seq), dtype=np.int32)
    with MDSWriter(out=str(held), columns={"tokens": "ndarray:int32"}, progress_bar=False) as writer:
        for row in ids:
            writer.write({"tokens": row})
    spec = Eval(tasks=["gpu_check"], include=[str(tasks)], batch_size=32, limit=items, heldout={"random": str(held)})
    start = load_start(str(folder))
    tick = time.perf_counter()
    evaluate(start.model, start.tokenizer, spec, SCRATCH / "worker-eval", name="gpu_check/worker")
    rate, where = items / (time.perf_counter() - tick), next(start.model.parameters()).device
    start.model.to("cpu")  # where a job's held-out loss finds it: the loaded folder, before lm-eval
    tick = time.perf_counter()
    found = heldout_loss(start.model, start.tokenizer, spec, size.seq)["domains"]["random"]
    tokens = found["tokens"] / (time.perf_counter() - tick)
    return f"lm-eval on {where}: {rate:,.1f} items/s; held-out loss: {tokens:,.0f} tokens/s (loss {found['loss']:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, a tiny Llama: checks the script runs")
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed runs per training path")
    parser.add_argument("--items", type=int, default=None, help="evaluation items [default: 2000, tiny 40]")
    args = parser.parse_args()
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    one, seven = (TINY, TINY) if device == "cpu" else (ONE_B, SEVEN_B)
    print(machine())
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    peak = next((flops for key, flops in PEAK_BF16.items() if key in name), None)
    params = sum(p.numel() for p in model_of(one, "meta").parameters())
    print(f"device: {name}; (a) model: {params:,} parameters, sequence {one.seq}, batch {one.batch}")

    speed = train_speed(one, device, args.repeats)
    for path, tokens_per_s in speed.items():
        mfu = f"MFU {6 * params * tokens_per_s / peak:.1%}" if peak else "MFU: no bf16 peak known for this device"
        print(f"(a) {path:6} {tokens_per_s:12,.0f} tokens/s  {mfu}")
    seven_params = sum(p.numel() for p in model_of(seven, "meta").parameters())
    print(f"(b) {seven_params:,} parameters, sequence {seven.seq}, FSDP2 + activation checkpointing: {memory(seven, device)}")
    items = args.items or (40 if device == "cpu" else 2000)
    for backend, rate in eval_speed(one, device, items).items():
        print(f"(c) {backend:6} " + (f"{rate:,.1f} items/s" if isinstance(rate, float) else rate))
    print(f"(d) worker {worker_eval(one, items, 16 if device == 'cpu' else 512)}")
    print(f"gpu_check: fsdp2 / plain tokens per second ratio = {speed['fsdp2'] / speed['plain']:.3f}")


if __name__ == "__main__":
    main()
