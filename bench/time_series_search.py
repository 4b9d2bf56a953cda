"""Choose the time-series recipe's defaults on held-out TRAINING series only (never the test splits).

Each set's train split is cut into 4 stratified folds (seed 0); each candidate runs the recipe (config.yaml + the
candidate's flags) 4 times, on 75% of the training series, scored on the other 25%, so every training series is
validated once (the validation sets of single splits, 9 to 50 series, are too small to tell settings apart).
Test series are never loaded. `--seeds N` repeats every fold with N seeds (--seed 42, 43, ...): the validation
accuracy is then the mean over folds x seeds, and the per-seed accuracies (each over all folds) are logged, so the
seed-to-seed spread shows how large a difference must be to mean anything. One run at a time, one torch thread.
Results are appended to bench/time_series_search.jsonl and printed as a table (validation accuracy, wall time of
the whole subprocess run).

    python bench/time_series_search.py                              # every candidate below on the five sets
    python bench/time_series_search.py base small                   # some candidates
    python bench/time_series_search.py default aug2 --seeds 3 --datasets GunPoint ArrowHead OSULeaf
    python bench/time_series_search.py --table                      # the log as a markdown table
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
from bench.time_series import CONFIG, DATASETS  # noqa: E402
from common.tasks.series_model import default_patch_length  # noqa: E402

OUT = ROOT / "bench" / "out" / "ts_search"
LOG = ROOT / "bench" / "time_series_search.jsonl"

# The candidates as they ran, in order, spelt out in full so they reproduce whatever config.yaml says now. Before
# the search config.yaml had d_model 64, 3 layers, ffn 128, batch 32, lr 1e-3, 50 pre-training + 100 fine-tuning
# epochs, per-series scaling, mean pooling, channels on their own; too slow to rerun in 4 folds within the session,
# so "small" is the starting point. Patches: length/8 within 2-16 steps, stride half a patch, unless a candidate
# says otherwise. The channel-attention rule (on for several channels) only changes BasicMotions.
LENGTHS = {"GunPoint": 150, "ArrowHead": 251, "ItalyPowerDemand": 24, "BasicMotions": 100, "OSULeaf": 427}
SMALL = ["--d_model", "32", "--num_hidden_layers", "2", "--num_attention_heads", "4", "--ffn_dim", "64",
         "--per_device_train_batch_size", "8", "--pretrain_epochs", "20", "--num_train_epochs", "60",
         "--learning_rate", "1e-3", "--mask_ratio", "0.4", "--augment", ""]


def patches(length, per_series, at_most):
    """--patch_length/--patch_stride: `length / per_series` steps (within 2 and at_most), stride half a patch."""
    patch = max(2, min(at_most, length // per_series))
    return ["--patch_length", str(patch), "--patch_stride", str(max(1, patch // 2))]


def flags(scaling="series", pooling="mean", channel_attention=False, extra=()):
    return lambda length: [*SMALL, "--scaling", scaling, "--pooling", pooling, "--channel_attention",
                           str(channel_attention).lower(), *(extra(length) if callable(extra) else extra)]


CANDIDATES = {
    # round 1: a small model, more optimizer steps (batch 8), shorter schedules; then the scaling
    "small": flags(),
    "small_dataset_scaling": flags(scaling="dataset"),
    # round 2, on top of dataset scaling (multivariate: channel attention first, then kept on)
    "ds_channel_attention": flags("dataset", channel_attention=True),
    "ds_lr3e-3": flags("dataset", channel_attention=True, extra=["--learning_rate", "3e-3"]),
    "ds_max": flags("dataset", "max", channel_attention=True),
    # round 3, on top of max pooling: shorter patches (8 steps at most, length/16)
    "ds_max_patch8": flags("dataset", "max", channel_attention=True, extra=lambda n: patches(n, 16, 8)),
}


def on_default(*extra):
    """A candidate on top of round 3's defaults (ds_max: dataset scaling, max pooling, channel attention). SMALL
    passes `--augment ''`, so an augmentation put in config.yaml later does not change these rows."""
    return flags("dataset", "max", channel_attention=True, extra=list(extra))


# round 4 (issue 6), 3 seeds: the defaults again, then changes on top of them, first on the three sets where
# PatchTST trailed MiniRocket (GunPoint, ArrowHead, OSULeaf)
CANDIDATES.update({
    "default": on_default(),
    "scratch": on_default("--pretrain_epochs", "0"),
    "aug2": on_default("--augment", "jitter,scale,slice", "--augment_factor", "2"),
    "regularised": on_default("--model_dropout", "0.2", "--weight_decay", "0.1", "--label_smoothing_factor", "0.1"),
    "epochs120": on_default("--num_train_epochs", "120"),
    "pretrain50_lr3e-4": on_default("--pretrain_epochs", "50", "--learning_rate", "3e-4",
                                    "--pretrain_learning_rate", "1e-3"),
})
# round 5 (issue 6): on top of aug2 (config.yaml's defaults since round 4), on the three sets PatchTST trails on
AUG2 = ["--augment", "jitter,scale,slice", "--augment_factor", "2"]
CANDIDATES.update({
    "aug2_stride4": on_default(*AUG2, "--patch_stride", "4"),  # twice the patches: finer shifts between them
    "aug2_wide": on_default(*AUG2, "--d_model", "64", "--ffn_dim", "128"),
    "aug2_scratch": on_default(*AUG2, "--pretrain_epochs", "0"),
    "aug2_diff": on_default(*AUG2, "--differences", "true"),  # + each channel's first difference
    "aug2_no_positions": on_default(*AUG2, "--position_encoding", "none"),  # patches as a set
    "np_stride4": on_default(*AUG2, "--position_encoding", "none", "--patch_stride", "4"),
    "np_diff": on_default(*AUG2, "--position_encoding", "none", "--differences", "true"),
    "aug2_learned_positions": on_default(*AUG2, "--position_encoding", "learned"),  # the model decides
    # stride a quarter of the recipe's patch (= 4 where the patch is 16 steps; ItalyPowerDemand's 3-step patches keep 1)
    "np_quarter": flags("dataset", "max", channel_attention=True, extra=lambda n: [
        *AUG2, "--position_encoding", "none", "--patch_stride", str(max(1, default_patch_length(n) // 4))]),
})
MULTIVARIATE_ONLY = {"ds_channel_attention"}  # a rule that changes nothing for one channel: run where it does


FOLDS = 4
SEED = 42  # config.yaml's; --seeds N runs 42, 43, ... (the first keeps the one-seed rows comparable)


def split_train(name, fold):
    """Fold `fold` of the train split (stratified), as parquet files with a list-per-channel `series` column."""
    import pandas as pd
    from aeon.datasets import load_classification
    from sklearn.model_selection import StratifiedKFold
    folder = OUT / name / f"fold{fold}"
    if (folder / "validation.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    X, y = load_classification(name, split="train")
    fit, held = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(X[:, 0, :1], y))[fold]
    for file, rows in (("train", fit), ("validation", held)):
        pd.DataFrame({"series": [X[i].tolist() for i in rows], "label": [str(y[i]) for i in rows]}).to_parquet(
            folder / f"{file}.parquet")
    return folder


def run(name, fold, candidate, flags, seed=SEED):
    """Validation accuracy (number right, number of series) and wall time of one recipe run."""
    folder = split_train(name, fold)
    out = folder / (candidate if seed == SEED else f"{candidate}_seed{seed}")
    command = [sys.executable, "recipes/time_series_classification/run.py", CONFIG, "--dataset_name", "",
               "--train_file", str(folder / "train.parquet"), "--validation_file", str(folder / "validation.parquet"),
               "--do_eval", "true", "--do_predict", "false", "--output_dir", str(out), "--overwrite_output_dir",
               "--disable_tqdm", "true", "--seed", str(seed), *flags]
    start = time.time()
    proc = subprocess.run(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    seconds = time.time() - start
    if proc.returncode:
        sys.exit(f"{name} fold {fold} {candidate} failed:\n{proc.stderr[-3000:]}")
    results = json.loads((out / "all_results.json").read_text())
    return round(results["eval_accuracy"] * results["eval_samples"]), results["eval_samples"], seconds


def accuracy(runs):
    """Validation accuracy over several runs' series: (right, series, seconds) each."""
    return round(sum(r[0] for r in runs) / sum(r[1] for r in runs), 4)


def table():
    """Validation accuracy (mean seconds per run) per candidate and set, from the log; the last row of each wins.
    Rows of several seeds are their own rows, with the per-seed range."""
    cells = {}
    for line in LOG.read_text().splitlines():
        row = json.loads(line)
        seeds = row.get("seeds", 1)
        cell = f"{row['val_accuracy']:.3f}"
        if seeds > 1:
            cell += f" [{min(row['seed_accuracies']):.3f}–{max(row['seed_accuracies']):.3f}]"
        key = row["candidate"] if seeds == 1 else f"{row['candidate']} ({seeds} seeds)"
        cells.setdefault(key, {})[row["dataset"]] = f"{cell} ({row['seconds_per_run']:.0f} s)"
    print("| candidate | " + " | ".join(DATASETS) + " |\n" + "|---" * (len(DATASETS) + 1) + "|")
    for candidate, row in cells.items():
        print(f"| {candidate} | " + " | ".join(row.get(name, "-") for name in DATASETS) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="*", metavar="CANDIDATE", help=f"default: all of {', '.join(CANDIDATES)}")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per fold (42, 43, ...); default 1")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=DATASETS, metavar="NAME")
    parser.add_argument("--table", action="store_true", help="print the log as a markdown table and stop")
    options = parser.parse_args()
    if options.table:
        return table()
    unknown = [c for c in options.candidates if c not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate {unknown[0]}; choose from {', '.join(CANDIDATES)}")
    seeds = [SEED + k for k in range(options.seeds)]
    for candidate in options.candidates or list(CANDIDATES):
        for name in options.datasets:
            if candidate in MULTIVARIATE_ONLY and name != "BasicMotions":
                continue
            argv = CANDIDATES[candidate](LENGTHS[name])
            if name != "BasicMotions":  # one channel: channel attention is off by itself
                argv = [a for i, a in enumerate(argv) if "--channel_attention" not in argv[max(0, i - 1):i + 1]]
            runs = {seed: [run(name, fold, candidate, argv, seed) for fold in range(FOLDS)] for seed in seeds}
            every = [r for per_seed in runs.values() for r in per_seed]
            row = {"candidate": candidate, "dataset": name, "val_accuracy": accuracy(every),
                   "series": sum(r[1] for r in every) // len(seeds),
                   "seconds_per_run": round(sum(r[2] for r in every) / len(every), 1),
                   "load": round(os.getloadavg()[0], 1), "flags": " ".join(argv)}
            if len(seeds) > 1:  # each seed's accuracy over all folds: the spread a difference must beat
                row.update(seeds=len(seeds), seed_accuracies=[accuracy(per_seed) for per_seed in runs.values()])
            print(json.dumps(row), flush=True)
            with LOG.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
