"""Throughput: this project's defaults against the HF example scripts' defaults, and the model FLOP/s
achieved against this machine's own matmul peak.

    python bench/throughput.py                    # sst2, conll2003, squad
    python bench/throughput.py sst2 --steps 100   # one task, another number of steps

Each task's recipe runs twice, as subprocesses, on the same model, data and number of optimizer steps:
  recipe       its bench config: each batch padded to its longest (a multiple of 8 on GPUs), batches grouped by
               length, bf16 autocast where the hardware does it fast, fused AdamW (transformers' default)
  hf_defaults  what run_glue.py / run_ner.py / run_qa.py do by default: every batch padded to
               max_seq_length (128; 384 for QA), fp32, random batches, batch size 8 (12 for QA, its README's
               command), learning rate 5e-5 (3e-5 for QA)
Training speed is timed per optimizer step after the first 5 (steady state); evaluation covers the whole
dev set, QA post-processing included. Model FLOP/s = 6 x non-embedding parameters x non-padding tokens/s
(attention's own FLOPs left out, as usual). Results are appended to bench/throughput_results.md.
"""
import argparse
import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/throughput_results.md"
WARMUP_STEPS = 5

TASKS = {  # name: (recipe, bench config, main metric, optimizer steps, HF example defaults)
    "sst2": ("text_classification", "bench/configs/sst2.yaml", "eval_accuracy", 300,
             ["--max_seq_length", "128", "--per_device_train_batch_size", "8", "--learning_rate", "5e-5"]),
    "conll2003": ("ner", "bench/configs/conll2003.yaml", "eval_f1", 150,  # run_ner: each sentence alone, lowercased
                  ["--max_seq_length", "128", "--per_device_train_batch_size", "8", "--learning_rate", "5e-5",
                   "--document_context", "false", "--case_token_types", "false"]),
    "squad": ("qa", "bench/configs/squad.yaml", "eval_f1", 60,
              ["--max_seq_length", "384", "--per_device_train_batch_size", "12", "--learning_rate", "3e-5",
               "--case_token_types", "false"]),
}
HF_COMMON = ["--pad_to_max_length", "true", "--auto_bf16", "false", "--train_sampling_strategy", "random",
             "--per_device_eval_batch_size", "8", "--warmup_steps", "0"]


def measure_matmul_peak(n=2048, seconds=3.0):
    """Best achieved FLOP/s of an n x n matmul, fp32 and bf16, on all this process's threads."""
    import torch
    peaks = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(3):
            a @ b  # warm-up
        best, end = float("inf"), time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        peaks[str(dtype).split(".")[-1]] = 2 * n ** 3 / best
    return peaks


def non_embedding_parameters():
    from transformers import AutoModel

    from common.modeling import default_model_path
    model = AutoModel.from_pretrained(default_model_path())
    embeddings = sum(p.numel() for p in model.embeddings.parameters())
    return sum(p.numel() for p in model.parameters()) - embeddings


def device_name():
    import torch
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()}-core CPU"


def append_section(path, title, section, about=None, echo=True):
    """Append one run's section (or part of one) to a results file, created the first time with `title` and a
    paragraph `about` it; print it unless echo is false."""
    if not path.exists():
        path.write_text(f"# {title}\n\n{about or f'Written by `bench/{Path(sys.argv[0]).name}`.'}\n")
    with path.open("a") as f:
        f.write(section)
    if echo:
        print(section)


def hf_defaults(task):
    """The flags that turn a recipe's bench config into what HF's example script does by default."""
    return HF_COMMON + TASKS[task][4]


def run_recipe(task, extra, steps, out_dir):
    """One recipe run, its bench config + `extra` flags, in a child process (this file with --child);
    returns its results, steady-state step timings and peak RSS."""
    recipe, config, _, _, _ = TASKS[task]
    flags = [config, "--output_dir", str(out_dir), "--overwrite_output_dir", "true", "--max_steps", str(steps),
             "--eval_strategy", "no", "--save_strategy", "no", "--do_predict", "false", "--logging_steps", "1000",
             "--disable_tqdm", "true", *extra]
    child = subprocess.Popen([sys.executable, __file__, "--child", recipe, *flags], cwd=ROOT,
                             env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"{task} {' '.join(extra)} failed (status {status}); its output is above")
    results = json.loads((out_dir / "all_results.json").read_text())
    return {**results, **json.loads((out_dir / "step_times.json").read_text()), "peak_rss_gib": usage.ru_maxrss / 2**20}


def child(recipe, flags):
    """Run a recipe in this process with a callback that times its optimizer steps."""
    from transformers import TrainerCallback

    sys.path.insert(0, str(ROOT))
    from common import training

    output_dir = Path(flags[flags.index("--output_dir") + 1])

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds, self.steps, self.tokens, self.start, self.tokens_before = 0.0, 0, 0, None, 0

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step >= WARMUP_STEPS:
                self.start, self.tokens_before = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            if self.start is not None:
                self.seconds += time.perf_counter() - self.start
                self.steps += 1
                self.tokens += state.num_input_tokens_seen - self.tokens_before
                self.start = None

        def on_train_end(self, args, state, control, **kwargs):
            samples = self.steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
            (output_dir / "step_times.json").write_text(json.dumps({
                "steady_steps": self.steps, "steady_samples_per_second": samples / self.seconds,
                "steady_tokens_per_second": self.tokens / self.seconds}))

    build = training.TrainerFactory.build

    def build_timed_trainer(self, cfg, callbacks=()):
        trainer = build(self, cfg, callbacks)
        trainer.args.include_num_input_tokens_seen = "non_padding"  # the command line only takes yes/no here
        trainer.add_callback(StepTimer())
        return trainer

    training.TrainerFactory.build = build_timed_trainer
    sys.argv = [str(ROOT / "recipes" / recipe / "run.py"), *flags]
    runpy.run_path(sys.argv[0], run_name="__main__")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", help=f"some of {', '.join(TASKS)} (default: all)")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (the first 5 untimed). Default: 300 "
                                                  "for sst2, 150 for conll2003, 60 for squad")
    options = parser.parse_args()
    if set(options.tasks) - set(TASKS):
        parser.error(f"unknown task(s) {', '.join(sorted(set(options.tasks) - set(TASKS)))}; choose from {', '.join(TASKS)}")
    sys.path.insert(0, str(ROOT))
    peaks = measure_matmul_peak()
    flops_per_token = 6 * non_embedding_parameters()
    rows = []
    for task in options.tasks or TASKS:
        _, _, metric, steps, _ = TASKS[task]
        runs = {s: run_recipe(task, flags, options.steps or steps, ROOT / "bench/out/throughput" / f"{task}_{s}")
                for s, flags in (("hf_defaults", hf_defaults(task)), ("recipe", []))}
        for setting, r in runs.items():
            model_flops = flops_per_token * r["steady_tokens_per_second"]
            rows.append(
                f"| {task} | {setting} | {r['steady_samples_per_second']:.1f} | {r['steady_tokens_per_second']:.0f} | "
                f"{r['eval_samples_per_second']:.1f} | {r['eval_runtime']:.1f} s | {r['peak_rss_gib']:.2f} GiB | "
                f"{r[metric]:.4f} ({metric}) | {model_flops / 1e12:.3f} | {model_flops / peaks['float32']:.1%} | "
                f"{model_flops / peaks['bfloat16']:.1%} |")
        a, b = runs["recipe"], runs["hf_defaults"]
        rows.append(f"| {task}, {options.steps or steps} steps | **recipe / hf_defaults** | **{a['steady_samples_per_second'] / b['steady_samples_per_second']:.2f}x** | "
                    f"{a['steady_tokens_per_second'] / b['steady_tokens_per_second']:.2f}x | "
                    f"**{a['eval_samples_per_second'] / b['eval_samples_per_second']:.2f}x** | "
                    f"{b['eval_runtime'] / a['eval_runtime']:.2f}x faster | | | | | |")
    header = (f"\n### {time.strftime('%Y-%m-%d')}, {device_name()} "
              f"(`python bench/throughput.py {' '.join(sys.argv[1:])}`)\n\n"
              f"Measured matmul peak (2048 x 2048): fp32 {peaks['float32'] / 1e12:.2f} TFLOP/s, bf16 "
              f"{peaks['bfloat16'] / 1e12:.2f} TFLOP/s ({peaks['bfloat16'] / peaks['float32']:.1f}x). Model FLOPs per "
              f"training token: {flops_per_token / 1e6:.1f} M (6 x non-embedding parameters).\n\n"
              "| task | setting | train samples/s | train tokens/s (non-padding) | eval samples/s | eval time "
              "(post-processing incl.) | peak RSS | dev metric after these steps | model TFLOP/s | of fp32 peak | "
              "of bf16 peak |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    append_section(RESULTS, "Throughput", header + "\n".join(rows) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
