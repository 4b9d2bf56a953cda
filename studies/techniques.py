"""What each fine-tuning technique buys, measured: 5 studies on ../shared/data, 3 seeds each (mean ± std).

    python studies/techniques.py                  # every study; finished runs are reused, not rerun
    python studies/techniques.py what_trains      # one study (names below)
    python studies/techniques.py --report         # only rebuild studies/results.md and the plots

Every run is a real recipe run (`python recipes/<task>/run.py ...`, the default all-MiniLM-L6-v2); its
all_results.json, wall time, peak memory and trainable-parameter count go to studies/out/runs/<hash of its flags>
(a run two studies share runs once).
The summary tables go to studies/results.md, one plot per study (metric against cost) to studies/<study>.png.
"""
import csv
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "studies" / "out"
SEEDS = (1, 2, 3)

# SST-2 runs: the first N training sentences, the full official dev set (872), the recipe's defaults otherwise.
SST2 = ["text_classification", "--train_file", DATA / "sst2/train.tsv", "--validation_file", DATA / "sst2/dev.tsv",
        "--text_column_names", "sentence", "--label_list", "0", "1"]
COMMON = ["--do_train", "--do_eval", "--num_train_epochs", "3", "--learning_rate", "5e-5",
          "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "128", "--warmup_steps", "0.1",
          "--weight_decay", "0.01", "--train_sampling_strategy", "group_by_length", "--eval_strategy", "no",
          "--save_strategy", "no", "--logging_steps", "50", "--report_to", "none", "--disable_tqdm", "true",
          "--overwrite_output_dir"]
FULL = [*SST2, "--max_train_samples", "2000"]
HEAD_LR = ["--learning_rate", "2e-3"]  # a head alone trains best with a rate ~40x the full model's
LORA_LR = ["--learning_rate", "5e-4"]
IMBALANCED_TSV = OUT / "data" / "sst2_10to1.tsv"  # written by imbalanced_sst2()
IMBALANCED = [*SST2[:1], "--train_file", IMBALANCED_TSV, *SST2[3:]]

STUDIES = {  # study: (question, metric, {variant: recipe + flags})
    "what_trains": ("Frozen encoder, cached features, LoRA or full fine-tuning? (SST-2, 2,000 training sentences, "
                    "3 epochs unless said)", "eval_accuracy", {
        "full fine-tuning": FULL,
        "frozen encoder (head only)": [*FULL, "--freeze_encoder", *HEAD_LR],
        "frozen + cached features": [*FULL, "--freeze_encoder", "--cache_features", *HEAD_LR],
        "frozen + cached, 30 epochs": [*FULL, "--freeze_encoder", "--cache_features", *HEAD_LR,
                                       "--num_train_epochs", "30"],
        "frozen + cached, 30 epochs, lr 1e-2": [*FULL, "--freeze_encoder", "--cache_features", *HEAD_LR,
                                                "--num_train_epochs", "30", "--learning_rate", "1e-2"],
        "LoRA r=4": [*FULL, "--lora", "--lora_r", "4", "--lora_alpha", "8", *LORA_LR],
        "LoRA r=8": [*FULL, "--lora", "--lora_r", "8", "--lora_alpha", "16", *LORA_LR],
        "LoRA r=16": [*FULL, "--lora", "--lora_r", "16", "--lora_alpha", "32", *LORA_LR],
    }),
    "schedules": ("Learning-rate schedule, warm-up and layer-wise decay (SST-2, 2,000 sentences, full fine-tuning, "
                  "3 epochs)", "eval_accuracy", {
        "linear, warm-up 10% (recipe default)": FULL,
        "linear, no warm-up": [*FULL, "--warmup_steps", "0"],
        "cosine, warm-up 10%": [*FULL, "--lr_scheduler_type", "cosine"],
        "constant after 10% warm-up": [*FULL, "--lr_scheduler_type", "constant_with_warmup"],
        "linear 10% + layer-wise decay 0.8, lr 1e-4": [*FULL, "--layerwise_lr_decay", "0.8", "--learning_rate",
                                                        "1e-4"],
        "linear 10%, lr 1e-4 (no decay)": [*FULL, "--learning_rate", "1e-4"],
    }),
    "imbalance": ("Class imbalance: SST-2 subsampled to 10:1 (1,500 positive, 150 negative sentences), scored on the "
                  "balanced dev set", "eval_f1_macro", {
        "none": [*IMBALANCED],
        "--class_weights balanced": [*IMBALANCED, "--class_weights", "balanced"],
        "--oversample": [*IMBALANCED, "--oversample"],
        "--focal_gamma 2": [*IMBALANCED, "--focal_gamma", "2"],
    }),
    "augmentation": ("Augmentation (--augment delete,swap,mask --augment_factor 1) on small SST-2 training sets, "
                     "at an equal number of optimizer steps (the augmented run has half the epochs over twice the "
                     "examples)", "eval_accuracy", {
        f"{n} sentences, {label}": [*SST2, "--max_train_samples", str(n), "--num_train_epochs", str(epochs), *flags]
        for n, full_epochs in ((100, 20), (500, 6), (2000, 3))
        for label, epochs, flags in (("no augmentation", full_epochs, []),
                                     ("augmented", full_epochs / 2, ["--augment", "delete,swap,mask"]))
    }),
}


def run_dir(flags, seed):
    """Runs are keyed by their flags, so a run two studies share (e.g. the recipe's defaults) runs once."""
    key = hashlib.sha1(" ".join(merged(COMMON, flags, ["--seed", seed])).encode()).hexdigest()[:12]
    return OUT / "runs" / key


def run(study, variant, flags, seed):
    out = run_dir(flags, seed)
    record = out / "study_run.json"
    if record.exists():
        return json.loads(record.read_text())
    recipe, *flags = flags
    command = [sys.executable, f"recipes/{recipe}/run.py",
               *merged(COMMON, flags, ["--seed", seed, "--output_dir", out])]
    print(f"[{study}] {variant}, seed {seed}: {out}", flush=True)
    start = time.time()
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{variant} seed {seed} failed:\n{stderr[-3000:]}")
    trainable = re.findall(r"trainable parameters: ([\d,]+)", stderr)
    result = {"results": json.loads((out / "all_results.json").read_text()), "wall_s": time.time() - start,
              "threads": os.environ.get("OMP_NUM_THREADS", "all cores"), "load_avg_at_end": os.getloadavg()[0],
              "peak_rss_gib": usage.ru_maxrss / 2**20, "trainable": int(trainable[-1].replace(",", "")) if trainable else None,
              "command": " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT.parent)) else c for c in command[1:])}
    record.write_text(json.dumps(result, indent=1))
    return result


def merged(*flag_lists):
    """One flag list; a flag given again later wins (as a user's override of a config would)."""
    flags = {}
    for tokens in flag_lists:
        tokens, i = [str(t) for t in tokens], 0
        while i < len(tokens):
            j = i + 1
            while j < len(tokens) and not tokens[j].startswith("--"):
                j += 1
            flags[tokens[i]] = tokens[i + 1:j]
            i = j
    return [token for flag, values in flags.items() for token in (flag, *values)]


def imbalanced_sst2():
    """1,500 positive and 150 negative training sentences (10:1), the first of each in train.tsv."""
    path = IMBALANCED_TSV
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(DATA / "sst2/train.tsv") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        kept = [r for r in rows if r["label"] == "1"][:1500] + [r for r in rows if r["label"] == "0"][:150]
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["sentence", "label"], delimiter="\t", quoting=csv.QUOTE_NONE,
                                    escapechar="\\")
            writer.writeheader()
            writer.writerows({"sentence": r["sentence"], "label": r["label"]} for r in kept)
    return path


def ensemble_study():
    """The 3 full fine-tuning seeds of what_trains, averaged by `python -m common.tools.ensemble`."""
    members = [run_dir(FULL, s) for s in SEEDS]
    out = OUT / "ensemble"
    if not (out / "ensemble_results.json").exists():
        subprocess.run([sys.executable, "-m", "common.tools.ensemble", *map(str, members), "--output_dir", str(out)],
                       cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads((out / "ensemble_results.json").read_text())


def summary(study, question, metric, variants):
    rows, points, command = [], [], None
    for variant in variants:
        records = [json.loads(p.read_text()) for s in SEEDS
                   if (p := run_dir(variants[variant], s) / "study_run.json").exists()]
        if not records:
            continue
        scores = [r["results"][metric] for r in records]
        walls = [r["wall_s"] for r in records]
        train = [r["results"]["train_runtime"] for r in records]
        mean, std = statistics.mean(scores), statistics.stdev(scores) if len(scores) > 1 else 0.0
        trainable = records[0]["trainable"]
        rows.append(f"| {variant} | {mean:.3f} ± {std:.3f} | {len(records)} | "
                    f"{f'{trainable:,}' if trainable else '?'} | {statistics.mean(train):.0f} s | "
                    f"{statistics.mean(walls):.0f} s | {max(r['peak_rss_gib'] for r in records):.2f} GiB |")
        points.append((variant, statistics.mean(train), mean, std))
        command = command or records[0]["command"]
    if not rows:
        return ""
    plot(study, question, metric, points)
    return (f"## {study}: {question}\n\nMetric: {metric} on the dev set, mean ± std over seeds {SEEDS}. One run, "
            f"for example: `python {command}`\n\n"
            f"| variant | {metric} | seeds | trainable parameters | training time | wall time (load + train + "
            f"eval) | peak RSS |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) +
            f"\n\n![{study}]({study}.png)\n")


def plot(study, question, metric, points):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for variant, cost, mean, std in points:
        axes.errorbar(cost, mean, yerr=std, fmt="o", capsize=4, label=variant)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_xlabel("training time, s (log scale)")
    axes.set_ylabel(f"dev {metric.replace('eval_', '')}")
    axes.set_title(textwrap.fill(question, 110), fontsize=8)
    axes.legend(fontsize=7, loc="best")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(ROOT / "studies" / f"{study}.png", dpi=110)
    plt.close(figure)


def ensemble_summary():
    path = OUT / "ensemble" / "ensemble_results.json"
    if not path.exists():
        return ""
    result = json.loads(path.read_text())["splits"]["validation"]
    rows = [f"| seed {seed} (full fine-tuning) | {scores['accuracy']:.4f} | {scores['f1_macro']:.4f} |"
            for seed, scores in zip(SEEDS, result["members"].values())]
    ensemble = result["ensemble"]
    return ("## ensemble: is an ensemble of 3 seeds worth it? (SST-2, 2,000 sentences, full fine-tuning)\n\n"
            "The three seeds of the recipe's defaults above, averaged by `python -m common.tools.ensemble "
            "studies/out/runs/<seed 1> <seed 2> <seed 3> --output_dir studies/out/ensemble` (3x the training and "
            "prediction cost of one member).\n\n| model | dev accuracy | dev macro-F1 |\n|---|---|---|\n"
            + "\n".join(rows) + f"\n| **ensemble of the 3** | **{ensemble['accuracy']:.4f}** | "
            f"**{ensemble['f1_macro']:.4f}** |\n\nGain over the best member: "
            f"{result['accuracy_gain_over_best_member']:+.4f} accuracy.\n")


if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or [*STUDIES, "ensemble"]
    if "--report" not in sys.argv:
        if not DATA.is_dir():
            raise SystemExit(f"the studies read ../shared/data ({DATA}): not found")
        imbalanced_sst2()
        for name in names:
            if name == "ensemble":
                ensemble_study()
                continue
            for variant, flags in STUDIES[name][2].items():
                for seed in SEEDS:
                    run(name, variant, flags, seed)
    sections = [summary(name, *STUDIES[name]) for name in STUDIES] + [ensemble_summary()]
    threads = sorted({json.loads(p.read_text()).get("threads", "all cores") for p in OUT.glob("runs/*/study_run.json")})
    (ROOT / "studies" / "results.md").write_text(
        "# Technique studies\n\nWritten by `python studies/techniques.py` (see its docstring). Times: "
        f"{os.cpu_count()}-core CPU (AVX512-BF16, no AMX; bf16 autocast on), torch threads per run: "
        f"{', '.join(map(str, threads))} (`OMP_NUM_THREADS=1`, two runs side by side, one per core); compare times "
        "within a table, not with the throughput benchmark.\n\n" + "\n".join(s for s in sections if s))
    print((ROOT / "studies" / "results.md").read_text())
