"""Quality runs on real public data (../shared/data): full training with the default model.

    python bench/quality.py                 # every run below
    python bench/quality.py conll2003       # one of them
    python bench/quality.py squad           # extractive QA (F1/EM); squad_run_qa_defaults: HF run_qa's settings

Each run's metrics, wall time and peak memory go to bench/results.md (and bench/out/<name>/).
"""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # name: (recipe, config, metric shown)
    "sst2": ("text_classification", "bench/configs/sst2.yaml", "eval_accuracy"),
    "rte": ("nli", "bench/configs/rte.yaml", "eval_accuracy"),
    "conll2003": ("ner", "bench/configs/conll2003.yaml", "predict_f1"),  # entity F1 on the test set
    "squad": ("qa", "bench/configs/squad.yaml", "eval_f1"),
    "squad_run_qa_defaults": ("qa", "bench/configs/squad_run_qa_defaults.yaml", "eval_f1"),
}


def run(name):
    recipe, config, metric = RUNS[name]
    command = [sys.executable, f"recipes/{recipe}/run.py", config, *sys.argv[2:]]
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.time() - start
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    overrides = sys.argv[2:]
    out = overrides[overrides.index("--output_dir") + 1] if "--output_dir" in overrides else f"bench/out/{name}"
    results = json.loads((ROOT / out / "all_results.json").read_text())
    score = (f"{results[metric]:.4f}" if metric == "eval_accuracy" else f"{results[metric]:.4f} ({metric})"
             if metric != "eval_f1" else f"F1 {results[metric]:.1f}, EM {results['eval_exact_match']:.1f}")  # QA
    return (f"| {name} | `python {' '.join(command[1:])}` | {score} | "
            f"{results['train_samples']} x {results['epoch']:.0f} ep | {wall / 60:.1f} min | "
            f"{results['train_samples_per_second']:.0f} | {peak_gib:.1f} GiB | {machine()} |")


def machine():
    import torch
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()}-core CPU"


if __name__ == "__main__":
    names = sys.argv[1:2] or list(RUNS)
    rows = [run(name) for name in names]
    results_md = ROOT / "bench/results.md"
    header = ("| run | command | dev accuracy | training | wall time | train samples/s | peak RSS | machine |\n"
              "|---|---|---|---|---|---|---|---|\n")
    lines = (results_md.read_text() if results_md.exists() else "# Quality runs\n\n" + header).splitlines()
    table = lines.index(header.splitlines()[1])  # rows go at the end of the quality table, before later sections
    end = next((i for i in range(table + 1, len(lines)) if not lines[i].startswith("|")), len(lines))
    results_md.write_text("\n".join(lines[:end] + rows + lines[end:]) + "\n")
    print("\n".join(rows))
