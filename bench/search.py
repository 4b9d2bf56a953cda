"""Hyperparameter search on real data: the same 12-trial search with the median pruner and without.

    python bench/search.py                    # SST-2, 2,000 training sentences, full dev set, default space
    python bench/search.py --trials 6         # shorter

Needs ../shared/data/sst2 beside the clone. Reports wall time, best dev accuracy, trials pruned, the
epochs actually trained (independent of machine load) and resident memory after each trial (it must not
grow), appended to bench/results.md.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def search(pruner, trials, train_samples, seed):
    out = ROOT / "bench/out" / f"search_{pruner}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh study each time
    command = [sys.executable, "recipes/text_classification/run.py", "bench/configs/sst2.yaml",
               "--output_dir", str(out), "--max_train_samples", str(train_samples), "--hpo_trials", str(trials),
               "--hpo_pruner", pruner, "--hpo_seed", str(seed), "--do_predict", "false"]
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.time() - start
    best = json.loads((out / "best_run.json").read_text())
    with open(out / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    epochs = json.loads((out / "trainer_state.json").read_text())["epoch"]  # the best, trained again
    trained = [float(r["user_attrs_epochs_trained"]) for r in rows if r.get("user_attrs_epochs_trained")]
    rss = [int(float(r["user_attrs_rss_mb"])) for r in rows if r.get("user_attrs_rss_mb")]
    final = json.loads((out / "all_results.json").read_text())
    return (f"| {pruner} | {trials} | {best['trials'].get('pruned', 0)} | {sum(trained):.0f} | "
            f"{best['value']:.4f} | {final['eval_accuracy']:.4f} ({epochs:.0f} ep) | "
            f"{best['search_seconds'] / 60:.1f} min | {wall / 60:.1f} min | {min(rss)}–{max(rss)} MB |"), command


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--train_samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    rows = []
    for pruner in ("median", "none"):
        row, command = search(pruner, options.trials, options.train_samples, options.seed)
        rows.append(row)
        print(row, flush=True)
    text = (f"\n## Hyperparameter search: SST-2, {options.train_samples} training sentences, full dev set, "
            f"default space, seed {options.seed}\n\n`python bench/search.py --trials {options.trials} "
            f"--train_samples {options.train_samples}` ({' '.join(command[1:4])} ... --hpo_pruner P)\n\n"
            "| pruner | trials | pruned | epochs trained in trials | best trial dev acc. | best retrained "
            "| search time | total wall | RSS after each trial |\n|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    with open(ROOT / "bench/results.md", "a") as fh:
        fh.write(text)
    print(text)
