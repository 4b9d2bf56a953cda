"""What a frozen all-MiniLM-L6-v2 carries in each of its sentence summaries (issue 20): a logistic regression on
the [CLS] token, on the pooler's output (what BertForSequenceClassification's head reads) and on the mean of the
token outputs (how the model was trained), SST-2's first 2,000 training sentences against the dev set (872).

    python studies/frozen_heads.py      # appends a table to studies/frozen_heads_results.md

The regression's C is chosen by 5-fold cross-validation on the 2,000 training sentences only.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import modeling  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).with_name("frozen_heads_results.md")


def read(path, limit=None):
    rows = [line.rsplit("\t", 1) for line in path.read_text().splitlines()[1:limit and limit + 1]]
    return [s for s, _ in rows], np.array([int(label) for _, label in rows])


def summaries(model, tokenizer, sentences, max_length=128):
    """{name: one row per sentence} for the three summaries, from one forward pass per batch."""
    parts = {"[CLS] token": [], "pooler output (tanh dense over [CLS])": [], "mean of token outputs": []}
    with torch.no_grad():
        for start in range(0, len(sentences), 64):
            batch = tokenizer(sentences[start:start + 64], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            out = model(**batch)
            mask = batch["attention_mask"].unsqueeze(-1).float()
            parts["[CLS] token"].append(out.last_hidden_state[:, 0])
            parts["pooler output (tanh dense over [CLS])"].append(out.pooler_output)
            parts["mean of token outputs"].append((out.last_hidden_state * mask).sum(1) / mask.sum(1))
    return {name: torch.cat(chunks).numpy() for name, chunks in parts.items()}


def main():
    from sklearn.linear_model import LogisticRegressionCV
    from transformers import AutoModel, AutoTokenizer
    path = modeling.default_model_path()
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    train_text, train_y = read(DATA / "sst2/train.tsv", 2000)
    dev_text, dev_y = read(DATA / "sst2/dev.tsv")
    train, dev = summaries(model, tokenizer, train_text), summaries(model, tokenizer, dev_text)
    rows = []
    for name in train:
        head = LogisticRegressionCV(Cs=[0.01, 0.1, 1, 10, 100], cv=5, max_iter=5000).fit(train[name], train_y)
        rows.append(f"| {name} | {head.score(dev[name], dev_y) * 100:.1f} | {head.C_[0]:g} |")
        print(rows[-1], flush=True)
    section = (f"\n### {time.strftime('%Y-%m-%d %H:%M')} (`python studies/frozen_heads.py`)\n\n"
               "| summary of the frozen encoder | SST-2 dev accuracy | C (5-fold CV on train) |\n|---|---|---|\n"
               + "\n".join(rows) + "\n")
    if not RESULTS.exists():
        about = __doc__.split("\n\n")[0].replace("\n", " ")
        RESULTS.write_text(f"# A frozen encoder's sentence summaries, read by a linear head\n\n{about}\n")
    with RESULTS.open("a") as fh:
        fh.write(section)


if __name__ == "__main__":
    main()
