"""Each speed choice of the recipes' defaults, measured on its own: the recipe's bench config with that one
choice undone (or, for torch.compile and padding to 8 on CPUs, added), same model, data and optimizer steps, in one run.

    python bench/ablations.py                          # sst2, conll2003, squad; every variant
    python bench/ablations.py sst2 --variants recipe compile --steps 100

A choice stays a default only if undoing it costs speed and adding it does not cost dev metric. Runs go through
bench/throughput.py's child process, so training is timed per optimizer step after the first 5 (steady state);
"whole run" divides all training samples by the training wall time, start-up and compilation included. Model
FLOP/s = 6 x non-embedding parameters x non-padding tokens/s, against the bf16 matmul peak measured here.
Results are appended to bench/ablations_results.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.throughput import (TASKS, append_section, device_name, measure_matmul_peak,  # noqa: E402
                             non_embedding_parameters, run_recipe)

RESULTS = ROOT / "bench/ablations_results.md"
VARIANTS = {  # name: (what it changes, flags on top of the bench config)
    "recipe": ("the defaults: bf16 autocast, length-grouped batches, fused AdamW (and on GPUs pad to a multiple of 8)",
               []),
    "fp32": ("no bf16 autocast", ["--auto_bf16", "false"]),
    "random_batches": ("no length grouping", ["--train_sampling_strategy", "random"]),
    "no_pad8": ("pad to the longest only, not a multiple of 8", ["--pad_to_multiple_of", "1"]),
    "pad8": ("pad to a multiple of 8", ["--pad_to_multiple_of", "8"]),
    "adamw_loop": ("AdamW's for-loop, not the fused kernel", ["--optim", "adamw_torch"]),
    "compile": ("+ torch.compile (inductor)", ["--torch_compile", "true"]),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", help=f"some of {', '.join(TASKS)} (default: all)")
    import torch
    undone = "pad8" if torch.cuda.is_available() else "no_pad8"  # padding to 8 is the default on GPUs only
    parser.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if v != undone], choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default: bench/throughput.py's per task)")
    options = parser.parse_args()
    if set(options.tasks) - set(TASKS):
        parser.error(f"unknown task(s) {', '.join(sorted(set(options.tasks) - set(TASKS)))}; choose from {', '.join(TASKS)}")
    peaks = measure_matmul_peak()
    flops_per_token = 6 * non_embedding_parameters()
    rows = []
    for task in options.tasks or TASKS:
        _, _, metric, steps, _ = TASKS[task]
        steps = options.steps or steps
        runs = {}
        for name in options.variants:
            runs[name] = r = run_recipe(task, VARIANTS[name][1], steps, ROOT / "bench/out/ablations" / f"{task}_{name}")
            print(f"{task} {name}: {r['steady_samples_per_second']:.1f} samples/s, {metric} {r[metric]:.4f}", flush=True)
        base = runs.get("recipe")
        for name, r in runs.items():
            speed = r["steady_samples_per_second"]
            versus = f"{speed / base['steady_samples_per_second']:.2f}" if base else "-"
            rows.append(
                f"| {task} ({steps} steps) | {name}: {VARIANTS[name][0]} | {speed:.1f} | {versus} | "
                f"{r['train_samples_per_second']:.1f} | {r['eval_samples_per_second']:.1f} | "
                f"{r[metric]:.4f} | {r['peak_rss_gib']:.2f} GiB | "
                f"{flops_per_token * r['steady_tokens_per_second'] / peaks['bfloat16']:.1%} |")
    header = (f"\n### {time.strftime('%Y-%m-%d %H:%M')}, {device_name()}, load average {os.getloadavg()[0]:.1f} at the end "
              f"(`python bench/ablations.py {' '.join(sys.argv[1:])}`)\n\n"
              f"Matmul peak: fp32 {peaks['float32'] / 1e12:.2f}, bf16 {peaks['bfloat16'] / 1e12:.2f} TFLOP/s.\n\n"
              "| task | variant | train samples/s (steady) | vs recipe | train samples/s (whole run) | "
              "eval samples/s | dev metric | peak RSS | of bf16 peak |\n|---|---|---|---|---|---|---|---|---|\n")
    append_section(RESULTS, "Ablations", header + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
