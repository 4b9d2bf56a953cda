"""How much RTE the default encoder knows without fine-tuning: its frozen sentence embeddings (mean-pooled, as
all-MiniLM-L6-v2 was trained) of premise u and hypothesis v, features [u, v, |u-v|, u*v, u.v], and a logistic
regression whose C is chosen by 5-fold cross-validation on RTE's training pairs; dev is only reported (issue 22).

    python bench/rte_embedding_probe.py
    python bench/rte_embedding_probe.py --runs bench/out/rte_seed42 bench/out/rte_seed43   # + fine-tuned runs

--runs: fine-tuned NLI runs' validation_predictions.jsonl; each run's dev accuracy alone and with its
probabilities averaged with the probe's (does the frozen-embedding view add to a fine-tuned cross-encoder?).
Results are appended to bench/rte_embedding_probe_results.md with the date and load.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.throughput import append_section, device_name  # noqa: E402
from common.modeling import default_model_path  # noqa: E402
from studies.frozen_heads import summaries  # noqa: E402

RESULTS = ROOT / "bench/rte_embedding_probe_results.md"
DATA = ROOT.parent / "shared" / "data" / "rte"
C_VALUES = (0.003, 0.01, 0.03, 0.1, 1.0)


def embed(texts, tokenizer, model):
    """Unit-length mean-pooled embeddings, as sentence-transformers computes them for this model."""
    means = summaries(model, tokenizer, texts, max_length=256)["mean of token outputs"]
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def pair_features(frame, tokenizer, model):
    u = embed(frame.sentence1.tolist(), tokenizer, model)
    v = embed(frame.sentence2.tolist(), tokenizer, model)
    return np.hstack([u, v, np.abs(u - v), u * v, (u * v).sum(1, keepdims=True)])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[], help="fine-tuned NLI run directories on RTE dev")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from transformers import AutoModel, AutoTokenizer

    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data beside the clone")
    started = time.time()
    read = dict(sep="\t", quoting=3)
    train, dev = pd.read_csv(DATA / "train.tsv", **read), pd.read_csv(DATA / "dev.tsv", **read)
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    model = AutoModel.from_pretrained(default_model_path()).eval()
    x_train, x_dev = pair_features(train, tokenizer, model), pair_features(dev, tokenizer, model)

    folds = {c: 100 * cross_val_score(LogisticRegression(C=c, max_iter=5000), x_train, train.label, cv=5).mean()
             for c in C_VALUES}
    best_c = max(folds, key=folds.get)
    probe = LogisticRegression(C=best_c, max_iter=5000).fit(x_train, train.label)
    probe_dev = 100 * probe.score(x_dev, dev.label)
    # Column 1 of predict_proba is label 1 (not_entailment), as the runs' probabilities["1"].
    probe_p1 = probe.predict_proba(x_dev)[:, 1]

    lines = ["| C | 5-fold accuracy on train |", "|---|---|"]
    lines += [f"| {c:g}{' (chosen)' if c == best_c else ''} | {score:.1f} |" for c, score in folds.items()]
    lines += ["", f"Dev accuracy of the chosen probe (C={best_c:g}, trained on all 2,490 training pairs): "
                  f"**{probe_dev:.1f}**"]
    if args.runs:
        lines += ["", "| fine-tuned run | dev accuracy | its probabilities averaged with the probe's |", "|---|---|---|"]
        for run in args.runs:
            rows = [json.loads(line) for line in open(Path(run) / "validation_predictions.jsonl")]
            run_p1 = np.array([row["probabilities"]["1"] for row in rows])
            alone = 100 * ((run_p1 > 0.5).astype(int) == dev.label.values).mean()
            mixed = 100 * (((run_p1 + probe_p1) / 2 > 0.5).astype(int) == dev.label.values).mean()
            lines.append(f"| {run} | {alone:.1f} | {mixed:.1f} |")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    command = " ".join(["python bench/rte_embedding_probe.py", *sys.argv[1:]])
    section = (f"\n### {time.strftime('%Y-%m-%d %H:%M')}, {device_name()}, {time.time() - started:.0f} s, "
               f"load average {load} at the end (`{command}`)\n\n" + "\n".join(lines) + "\n")
    append_section(RESULTS, "RTE: the default encoder's frozen sentence embeddings + logistic regression", section,
                   about="Written by `python bench/rte_embedding_probe.py`: what the encoder knows about "
                         "entailment without fine-tuning. C is chosen on training folds; dev is only reported.")


if __name__ == "__main__":
    main()
