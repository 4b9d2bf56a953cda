"""Hyperparameter search on real data, scaled out: the same 12-trial search with 1 worker and with 2 workers
(one thread each) on one PostgreSQL study.

    python bench/search.py                              # a throwaway PostgreSQL server (.ci/postgres.sh)
    python bench/search.py --storage postgresql://user:pw@host/db --workers 1 2 4 --trials 24

Needs ../shared/data/sst2 beside the clone. SST-2, --train_samples training sentences, --eval_samples dev
sentences for the trials' evaluations (this bench measures the search machinery: wall time, trials pruned,
memory per worker; the quality runs choose their settings on training data, bench/quality.py). Appends a
table to bench/results.md: wall time, best value, trials pruned, the epochs trials trained (independent of
machine load) and each worker's resident memory after each of its trials (it must not grow).
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def search(storage, workers, options):
    """One study, `workers` processes started together, each with its own output_dir and one thread."""
    study = f"bench-{workers}w-{uuid.uuid4().hex[:6]}"
    outs = [ROOT / "bench/out" / f"search_{workers}w_{i}" for i in range(workers)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    procs = []
    start = time.time()
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "recipes/text_classification/run.py", "bench/configs/sst2.yaml",
                   "--output_dir", str(out), "--max_train_samples", str(options.train_samples),
                   "--max_eval_samples", str(options.eval_samples), "--hpo_trials", str(options.trials),
                   "--hpo_pruner", options.pruner, "--hpo_storage", storage, "--hpo_study_name", study,
                   "--do_predict", "false", "--disable_tqdm", "true"]
        out.parent.mkdir(parents=True, exist_ok=True)
        log = open(out.with_suffix(".log"), "w")
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    wall = time.time() - start
    if any(codes):
        raise SystemExit(f"a worker failed: see {outs[codes.index(next(c for c in codes if c))]}.log")
    best = json.loads((outs[0] / "best_run.json").read_text())
    with open(outs[0] / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    trained = [float(r["user_attrs_epochs_trained"]) for r in rows if r.get("user_attrs_epochs_trained")]
    final = next(json.loads((o / "all_results.json").read_text()) for o in outs if (o / "all_results.json").exists())
    memory = "; ".join(_rss_of(o.with_suffix(".log"), rows) for o in outs)
    return (f"| {workers} | {best['trials'].get('complete', 0) + best['trials'].get('pruned', 0)} "
            f"({best['trials'].get('pruned', 0)}) | {sum(trained):.0f} | {best['value']:.4f} | "
            f"{final['eval_accuracy']:.4f} | {wall / 60:.1f} min | {memory} |"), command


def _rss_of(log, rows):
    """A worker's resident memory after each of its trials, in MB, in the order it ran them."""
    mine = [int(m.group(1)) for m in re.finditer(r"search: trial (\d+) ", log.read_text())]
    by_number = {int(r["number"]): r.get("user_attrs_rss_mb") for r in rows}
    values = [int(float(by_number[n])) for n in mine if by_number.get(n)]
    return "→".join(map(str, values)) + " MB" if values else "n/a"


def throwaway_postgres():
    proc = subprocess.run(["bash", str(ROOT / ".ci/postgres.sh"), "start"], check=True, capture_output=True, text=True)
    settings = dict(item.split("=", 1) for item in proc.stdout.split()[1:])
    return settings["HPO_POSTGRES_URL"], settings["HPO_POSTGRES_DIR"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="an Optuna RDB URL; default: a throwaway PostgreSQL server")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--train_samples", type=int, default=500)
    parser.add_argument("--eval_samples", type=int, default=300)
    parser.add_argument("--pruner", default="median")
    options = parser.parse_args()
    storage, server_dir = (options.storage, None) if options.storage else throwaway_postgres()
    rows = []
    try:
        for workers in options.workers:
            row, command = search(storage, workers, options)
            rows.append(row)
            print(row, flush=True)
    finally:
        if server_dir:
            subprocess.run(["bash", str(ROOT / ".ci/postgres.sh"), "stop", server_dir])
    load = os.getloadavg()
    append_section(ROOT / "bench/results.md", "Benchmarks", (
        f"\n## Hyperparameter search on PostgreSQL: SST-2, {options.train_samples} training sentences, "
        f"{options.eval_samples} dev sentences, default space, {options.pruner} pruner, one thread a worker\n\n"
        f"`python bench/search.py --trials {options.trials} --workers {' '.join(map(str, options.workers))}`, "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average at the end {load[0]:.1f} / {load[2]:.1f} "
        f"(1 / 15 min)\n\n"
        "| workers | trials (pruned) | epochs trained in trials | best trial's value | best retrained | wall | "
        "resident memory after each trial, per worker |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"))
