"""Time-series classification quality: PatchTST (pre-trained on the training series, then fine-tuned; and from
scratch) next to aeon's MiniRocket and 1-NN-DTW, on UCR/UEA test splits, with wall times, in one run.

    python bench/time_series.py                                  # the five sets below
    python bench/time_series.py GunPoint ArrowHead               # some of them
    python bench/time_series.py --seeds 3                        # each PatchTST run and MiniRocket with 3 seeds
    python bench/time_series.py GunPoint -- --num_train_epochs 50  # flags after -- go to the recipe

PatchTST runs the recipe's config.yaml unchanged (only --dataset_name, --output_dir, --seed and --pretrain_epochs 0
for the from-scratch run), as a subprocess, so its wall time includes start-up, pre-training and prediction. The
baselines are fit on the same train split and scored on the same test split. With --seeds N, PatchTST runs with
--seed 42, 43, ... and MiniRocket with random_state 0, 1, ...; a cell is then the mean accuracy [min–max] (mean
wall time); 1-NN-DTW has no randomness and runs once. With several seeds the pre-trained runs are also ensembled
(`python -m common.tools.ensemble`, mean class probabilities); its wall time is all members' plus the ensembling. Every
run appends a section (date, command, load) to bench/time_series_results.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.throughput import append_section  # noqa: E402

DATASETS = ["GunPoint", "ArrowHead", "ItalyPowerDemand", "BasicMotions", "OSULeaf"]
CONFIG = "recipes/time_series_classification/config.yaml"
RESULTS = ROOT / "bench" / "time_series_results.md"


def run_dir(name, pretrain, seed):
    return f"bench/out/ts/{name}_{'pretrained' if pretrain else 'scratch'}_seed{seed}"


def patchtst(name, pretrain, extra, seed=42):
    out = run_dir(name, pretrain, seed)
    command = [sys.executable, "recipes/time_series_classification/run.py", CONFIG, "--dataset_name", f"ucr/{name}",
               "--output_dir", out, "--overwrite_output_dir", "--disable_tqdm", "true", "--seed", str(seed),
               *extra, *([] if pretrain else ["--pretrain_epochs", "0"])]  # last: from scratch whatever extra says
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    results = json.loads((ROOT / out / "all_results.json").read_text())
    return results["predict_accuracy"], time.time() - start


def ensemble(name, seeds, runs):
    """common.tools.ensemble over the pre-trained runs of these seeds (mean class probabilities): test accuracy, and the
    wall time of all members (`runs`) plus the ensembling."""
    members = [run_dir(name, True, seed) for seed in seeds]
    out = f"bench/out/ts/{name}_ensemble"
    start = time.time()
    subprocess.run([sys.executable, "-m", "common.tools.ensemble", *members, "--output_dir", out, "--overwrite_output_dir"],
                   cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True)
    summary = json.loads((ROOT / out / "ensemble_results.json").read_text())
    return summary["splits"]["test"]["ensemble"]["accuracy"], time.time() - start + sum(s for _, s in runs)


def baseline(name, make):
    from aeon.datasets import load_classification
    X, y = load_classification(name, split="train")
    X_test, y_test = load_classification(name, split="test")
    start = time.time()
    model = make().fit(X, y)
    accuracy = float((model.predict(X_test) == y_test).mean())
    return accuracy, time.time() - start


def minirocket(seed=0):
    from aeon.classification.convolution_based import MiniRocketClassifier
    return MiniRocketClassifier(random_state=seed)


def one_nn_dtw():
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    return KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", metavar="DATASET", help=f"default: {' '.join(DATASETS)}")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per PatchTST run and MiniRocket; default 1")
    options = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    names, seeds = options.datasets or DATASETS, [42 + k for k in range(options.seeds)]
    load = os.getloadavg()[0]
    _append(f"\n## {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: `python bench/time_series.py "
            f"{' '.join(argv)}`".rstrip() + f", {options.seeds} seed(s), load average {load:.1f} at start\n\n"
            + HEADER + "\n" + "|---" * 10 + "|\n")
    for name in names:
        load = os.getloadavg()[0]
        pretrained = [patchtst(name, True, extra, seed) for seed in seeds]
        scratch = [patchtst(name, False, extra, seed) for seed in seeds]
        rocket = [baseline(name, lambda: minirocket(k)) for k in range(len(seeds))]
        ensembled = _cell([ensemble(name, seeds, pretrained)]) if len(seeds) > 1 else "-"
        cells = " | ".join([_cell(pretrained), ensembled, _cell(scratch), _cell(rocket),
                            _cell([baseline(name, one_nn_dtw)])])
        verdict = "yes" if _mean(pretrained) >= _mean(rocket) else "no"
        row = (f"| {name} | {cells} | {verdict} | {load:.1f} | {time.strftime('%H:%M', time.gmtime())} | "
               f"{' '.join(extra) or 'config as is'} |")
        print(row, flush=True)
        _append(row + "\n")
    print(f"\nappended to {RESULTS}")


HEADER = ("| dataset | PatchTST pre-trained + fine-tuned | ensemble of those (all seeds) | PatchTST from scratch "
          "| MiniRocket | 1-NN-DTW "
          "| pre-trained ≥ MiniRocket | load average at start | UTC | recipe overrides |")


def _mean(runs):
    return sum(acc for acc, _ in runs) / len(runs)


def _cell(runs):
    """'0.9600 (11 s)' for one run; 'mean [min–max] (mean wall time)' for several."""
    accuracies, seconds = [acc for acc, _ in runs], sum(secs for _, secs in runs) / len(runs)
    spread = f" [{min(accuracies):.4f}–{max(accuracies):.4f}]" if len(runs) > 1 else ""
    return f"{_mean(runs):.4f}{spread} ({seconds:.0f} s)"


def _append(text):
    append_section(RESULTS, "Time-series classification: test accuracy (wall time)", text, echo=False, about=(
        f"`python bench/time_series.py [DATASET ...] [--seeds N] [-- recipe flags]`, {os.cpu_count()} CPU cores, "
        f"recipe config `{CONFIG}`. PatchTST times are whole subprocess runs (start-up, pre-training, fine-tuning, "
        "prediction); baselines are fit + predict (MiniRocket's first run includes numba compilation). The "
        "machine was shared with other jobs when the load average exceeds 2: wall times are then upper bounds. "
        "Each run appends a section."))


if __name__ == "__main__":
    main()
