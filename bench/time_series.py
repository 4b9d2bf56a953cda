"""Time-series classification quality: PatchTST (pre-trained on the training series, then fine-tuned; and from
scratch) next to aeon's MiniRocket and 1-NN-DTW, on UCR/UEA test splits, with wall times, in one run.

    python bench/time_series.py                                  # the five sets below
    python bench/time_series.py GunPoint ArrowHead               # some of them
    python bench/time_series.py GunPoint -- --num_train_epochs 50  # flags after -- go to the recipe

PatchTST runs the recipe's config.yaml unchanged (only --dataset_name, --output_dir and --pretrain_epochs 0 for
the from-scratch run), as a subprocess, so its wall time includes start-up, pre-training and prediction. The
baselines are fit on the same train split and scored on the same test split. Results: bench/time_series_results.md.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["GunPoint", "ArrowHead", "ItalyPowerDemand", "BasicMotions", "OSULeaf"]
CONFIG = "recipes/time_series_classification/config.yaml"
RESULTS = ROOT / "bench" / "time_series_results.md"


def patchtst(name, pretrain, extra):
    out = f"bench/out/ts/{name}_{'pretrained' if pretrain else 'scratch'}"
    command = [sys.executable, "recipes/time_series_classification/run.py", CONFIG, "--dataset_name", f"ucr/{name}",
               "--output_dir", out, "--overwrite_output_dir", "--disable_tqdm", "true",
               *([] if pretrain else ["--pretrain_epochs", "0"]), *extra]
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    results = json.loads((ROOT / out / "all_results.json").read_text())
    return results["predict_accuracy"], time.time() - start


def baseline(name, make):
    from aeon.datasets import load_classification
    X, y = load_classification(name, split="train")
    X_test, y_test = load_classification(name, split="test")
    start = time.time()
    model = make().fit(X, y)
    accuracy = float((model.predict(X_test) == y_test).mean())
    return accuracy, time.time() - start


def minirocket():
    from aeon.classification.convolution_based import MiniRocketClassifier
    return MiniRocketClassifier(random_state=0)


def one_nn_dtw():
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    return KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    names = (argv[:argv.index("--")] if "--" in argv else argv) or DATASETS
    rows = _existing_rows()  # a run of some sets keeps the other sets' rows
    for name in names:
        load = os.getloadavg()[0]
        scores = [patchtst(name, True, extra), patchtst(name, False, extra),
                  baseline(name, minirocket), baseline(name, one_nn_dtw)]
        cells = " | ".join(f"{acc:.4f} ({secs:.0f} s)" for acc, secs in scores)
        verdict = "yes" if scores[0][0] >= scores[2][0] else "no"
        rows[name] = (f"| {name} | {cells} | {verdict} | {load:.1f} | {time.strftime('%H:%M', time.gmtime())} | "
                      f"{' '.join(extra) or 'config as is'} |")
        print(rows[name], flush=True)
        _write(rows)
    print(f"\nwritten to {RESULTS}")


HEADER = ("| dataset | PatchTST pre-trained + fine-tuned | PatchTST from scratch | MiniRocket | 1-NN-DTW "
          "| pre-trained ≥ MiniRocket | load average at start | UTC | recipe overrides |")


def _existing_rows():
    if not RESULTS.exists():
        return {}
    lines = [line for line in RESULTS.read_text().splitlines() if line.startswith("| ") and line != HEADER]
    return {line.split(" | ")[0][2:]: line for line in lines if not line.startswith("| dataset")}


def _write(rows):
    rows = {**_existing_rows(), **rows}  # rows another run wrote meanwhile stay
    ordered = [rows[n] for n in DATASETS if n in rows] + [r for n, r in rows.items() if n not in DATASETS]
    RESULTS.write_text(
        "# Time-series classification: test accuracy (wall time)\n\n"
        f"`python bench/time_series.py [DATASET ...] [-- recipe flags]`, {os.cpu_count()} CPU cores, recipe config "
        f"`{CONFIG}`. PatchTST times are whole subprocess runs (start-up, pre-training, fine-tuning, prediction); "
        "baselines are fit + predict (MiniRocket's first run includes numba compilation). The machine was shared "
        "with other jobs when the load average exceeds 2: wall times are then upper bounds.\n\n"
        + "\n".join([HEADER, "|---" * 9 + "|", *ordered]) + "\n")


if __name__ == "__main__":
    main()
