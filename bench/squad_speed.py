"""Training speed of the QA recipe's settings against HF run_qa.py's defaults, on the same SQuAD windows,
measured in one process by alternating the two (so both see the same load on a shared machine).

    python bench/squad_speed.py [rounds]

recipe: batches of 16 windows of similar length (group_by_length), each padded to its longest rounded up
to a multiple of 8, bf16 autocast (where the CPU has native bf16). run_qa: batches of 12 random windows
padded to 384, fp32. Both: all-MiniLM-L6-v2, forward + backward + AdamW step.
"""
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from transformers import AutoModelForQuestionAnswering, AutoTokenizer  # noqa: E402

from common import args, data, modeling, span_extraction  # noqa: E402


def batch(tokenizer, windows, length):
    ids = [w[:length] + [tokenizer.pad_token_id] * (length - len(w[:length])) for w in windows]
    mask = [[1] * min(len(w), length) + [0] * (length - min(len(w), length)) for w in windows]
    n = len(windows)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
            "start_positions": torch.zeros(n, dtype=torch.long), "end_positions": torch.zeros(n, dtype=torch.long)}


def main(rounds=4):
    tokenizer = AutoTokenizer.from_pretrained(modeling.default_model_path())
    raw = data.read_file(str(ROOT.parent / "shared/data/squad/train.json"))
    encode = span_extraction.window_encoder(tokenizer, "question", "context", "answers", 384, 128)
    windows = raw.map(encode, batched=True, with_indices=True, remove_columns=raw.column_names)["input_ids"]
    by_length = sorted(windows, key=len)
    grouped = [by_length[i:i + 16] for i in range(0, len(by_length) - 15, 16)]
    model = AutoModelForQuestionAnswering.from_pretrained(modeling.default_model_path()).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    bf16 = args.cpu_has_fast_bf16()
    rng, seconds, counts = random.Random(0), {"recipe": 0.0, "run_qa": 0.0}, {"recipe": 0, "run_qa": 0}
    for step in range(rounds + 1):  # the first round warms up and is not counted
        for name in ("run_qa", "recipe"):
            if name == "run_qa":
                chosen, length, autocast = rng.sample(windows, 12), 384, False
            else:
                chosen = rng.choice(grouped)
                length, autocast = -(-max(map(len, chosen)) // 8) * 8, bf16
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(**batch(tokenizer, chosen, length)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step:
                seconds[name] += time.perf_counter() - start
                counts[name] += len(chosen)
    for name in seconds:
        print(f"{name}: {counts[name] / seconds[name]:.1f} windows/s ({counts[name]} windows, {seconds[name]:.0f} s)")
    print(f"recipe / run_qa: {counts['recipe'] / seconds['recipe'] / (counts['run_qa'] / seconds['run_qa']):.1f}x "
          f"(bf16 autocast: {bf16})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
