"""What LoRA (and a frozen encoder) need to learn on all-MiniLM-L6-v2 (issue 20): real recipe runs, 3 seeds.

    python studies/lora.py screen      # 1 seed, settings chosen on held-out parts of the training data
    python studies/lora.py confirm     # 3 seeds: full fine-tuning, the old and the new LoRA defaults, on dev
    python studies/lora.py screen_ner  # 1 seed: LoRA's learning rate for NER, on held-out training sentences
    python studies/lora.py screen_qa   # 1 seed: LoRA's learning rate for QA, on held-out training questions
    python studies/lora.py screen_qa_token_types  # 1 seed: QA LoRA with token-type embeddings / without marks
    python studies/lora.py real        # 3 seeds: the LoRA default against full fine-tuning on SST-2, CoNLL, SQuAD
    python studies/lora.py frozen      # 3 seeds: the frozen encoder on SST-2, head alone or with the pooler
    python studies/lora.py --report    # only rebuild studies/lora_results.md from studies/lora_results.jsonl

Every run is `python recipes/<task>/run.py ...` through studies/techniques.py's runner (finished runs are
reused); each finished run is appended to studies/lora_results.jsonl at once, with its command, accuracy/F1,
trainable parameters and its first and last logged training loss. Every LoRA run has the optimizer steps of
the full fine-tuning run of its set (same epochs, batch size and data).
"""
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import data  # noqa: E402
from common.tools import demo_data  # noqa: E402
from studies.techniques import DATA, OUT, merged, run, run_dir  # noqa: E402

RESULTS = Path(__file__).with_name("lora_results.jsonl")
REPORT = Path(__file__).with_name("lora_results.md")
SETS_DIR = OUT / "data" / "lora"
TSV = ["--text_column_names", "sentence", "--label_list", "0", "1"]

# set: (recipe + data + the full fine-tuning run's settings, metric). Sizes say what each is.
SETS = {
    # 3-class pairs from the project's demo data (NLI demo, as text-pair classification): 240 train, 60 dev,
    # 6 epochs of batch 16 = 90 optimizer steps, as in the issue. Screening: 60 more training rows held out.
    "demo3 (240/60)": (["text_classification", "--train_file", SETS_DIR / "demo3_train.jsonl",
                        "--validation_file", SETS_DIR / "demo3_dev.jsonl", "--text_column_names",
                        "premise,hypothesis", "--num_train_epochs", "6", "--per_device_train_batch_size", "16",
                        "--learning_rate", "1e-4"], "eval_accuracy"),
    "demo3 held-out": (["text_classification", "--train_file", SETS_DIR / "demo3_train.jsonl",
                        "--validation_file", SETS_DIR / "demo3_heldout.jsonl", "--text_column_names",
                        "premise,hypothesis", "--num_train_epochs", "6", "--per_device_train_batch_size", "16",
                        "--learning_rate", "1e-4"], "eval_accuracy"),
    # SST-2: the first 2,000 training sentences, the official dev set (872), 3 epochs of 32 (189 steps).
    # Screening: the first 1,600 of them, scored on the other 400.
    "SST-2 (2,000/872)": (["text_classification", "--train_file", DATA / "sst2/train.tsv", "--max_train_samples",
                           "2000", "--validation_file", DATA / "sst2/dev.tsv", *TSV], "eval_accuracy"),
    "SST-2 held-out (1,600/400)": (["text_classification", "--train_file", SETS_DIR / "sst2_1600.tsv",
                                    "--validation_file", SETS_DIR / "sst2_heldout400.tsv", *TSV], "eval_accuracy"),
    # CoNLL-2003: the first 2,000 training sentences, the first 1,000 dev sentences, 3 epochs of 32.
    # Screening: the same 2,000, scored on training sentences 2,000-2,999.
    "CoNLL-2003 held-out (2,000/1,000 train)": (["ner", "--train_file", DATA / "conll2003/train.txt",
                                                 "--validation_file", SETS_DIR / "conll_heldout1000.txt",
                                                 "--max_train_samples", "2000", "--learning_rate", "1e-4"],
                                                "eval_f1"),
    "CoNLL-2003 (2,000/1,000)": (["ner", "--train_file", DATA / "conll2003/train.txt", "--validation_file",
                                  DATA / "conll2003/dev.txt", "--max_train_samples", "2000", "--max_eval_samples",
                                  "1000", "--learning_rate", "1e-4"], "eval_f1"),
    # SQuAD v1.1 slice: the first 600 training questions, the first 300 dev questions, 256-token windows,
    # 2 epochs of 16. Screening: the same 600, scored on the last 300 training questions (another article).
    "SQuAD held-out (600/300 train)": (["qa", "--train_file", DATA / "squad/train.json", "--validation_file",
                                        SETS_DIR / "squad_heldout300.jsonl", "--max_train_samples", "600",
                                        "--max_seq_length", "256", "--doc_stride", "96", "--num_train_epochs", "2",
                                        "--per_device_train_batch_size", "16", "--learning_rate", "1e-4"], "eval_f1"),
    "SQuAD slice (600/300)": (["qa", "--train_file", DATA / "squad/train.json", "--validation_file",
                               DATA / "squad/dev.json", "--max_train_samples", "600", "--max_eval_samples", "300",
                               "--max_seq_length", "256", "--doc_stride", "96", "--num_train_epochs", "2",
                               "--per_device_train_batch_size", "16", "--learning_rate", "1e-4"], "eval_f1"),
}
OLD_LORA = ["--lora", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", "query", "value",
            "--lora_modules_to_save", "classifier", "qa_outputs"]  # the defaults before this study
ALL_LINEAR = ["--lora", "--lora_target_modules", "all-linear"]  # + the pooler in full (the head's default now)
VARIANTS = {
    "full fine-tuning": [],
    "LoRA old default (r 8, query/value, head only), lr 5e-4": [*OLD_LORA, "--learning_rate", "5e-4"],
    "LoRA query/value + pooler, lr 5e-4": [*OLD_LORA[:-3], "--learning_rate", "5e-4"],
    "LoRA all-linear, head only, lr 1e-3": [*ALL_LINEAR, "--lora_modules_to_save", "classifier", "qa_outputs",
                                            "--learning_rate", "1e-3"],
    "LoRA all-linear + pooler, lr 5e-4": [*ALL_LINEAR, "--learning_rate", "5e-4"],
    "LoRA all-linear + pooler, lr 1e-3": [*ALL_LINEAR, "--learning_rate", "1e-3"],
    "LoRA all-linear + pooler, lr 2e-3": [*ALL_LINEAR, "--learning_rate", "2e-3"],
    "LoRA all-linear + pooler, r 16 alpha 32 rsLoRA, lr 5e-4": [*ALL_LINEAR, "--lora_r", "16", "--lora_alpha", "32",
                                                                "--use_rslora", "--learning_rate", "5e-4"],
    "LoRA all-linear + pooler, r 16 alpha 32 rsLoRA, full's lr": [*ALL_LINEAR, "--lora_r", "16", "--lora_alpha",
                                                                  "32", "--use_rslora"],
}
# QA reads token types (question/context, capitals marked), whose embeddings LoRA leaves frozen.
VARIANTS["LoRA all-linear, head + token-type embeddings in full, lr 2e-3"] = [
    *ALL_LINEAR, "--lora_modules_to_save", "qa_outputs", "token_type_embeddings", "--learning_rate", "2e-3"]
VARIANTS["LoRA all-linear + pooler, lr 2e-3, capitals not marked"] = [*ALL_LINEAR, "--learning_rate", "2e-3",
                                                                      "--case_token_types", "false"]
VARIANTS["LoRA new default (all-linear, r 8, pooler in full), lr 5e-4"] = ["--lora", "--learning_rate", "5e-4"]
NEW, OLD = list(VARIANTS)[-1], list(VARIANTS)[1]
FULL = "full fine-tuning"
FROZEN = {"frozen encoder, head only, lr 1e-2": ["--freeze_encoder", "--learning_rate", "1e-2"],
          "frozen encoder + pooler, lr 1e-3": ["--freeze_encoder", "--train_pooler", "--learning_rate", "1e-3"]}
VARIANTS.update(FROZEN)
# The LoRA default on each real set: the rate a recipe's --lora run trains at when none is given (its
# LORA_DEFAULTS), chosen on held-out training rows (screen, screen_ner, screen_qa).
LORA_DEFAULT = {"SST-2 (2,000/872)": NEW, "CoNLL-2003 (2,000/1,000)": "LoRA all-linear + pooler, lr 2e-3",
                "SQuAD slice (600/300)": "LoRA all-linear + pooler, lr 2e-3"}
REAL_SETS = list(LORA_DEFAULT)
# Lean: 2 CPU cores shared with other jobs (load 6-11 while this ran), so a run takes minutes.
STAGES = {  # stage: [(set, variants, seeds)], run in this order
    "screen": [("demo3 held-out", [v for v in VARIANTS if "2e-3" not in v and "rsLoRA, lr" not in v
                                   and "+ pooler, lr 1e-3" not in v and v != NEW], (1,)),
               ("SST-2 held-out (1,600/400)", [FULL, "LoRA all-linear + pooler, lr 5e-4"], (1,))],
    "confirm": [("demo3 (240/60)", [NEW, FULL, OLD], (1, 2, 3)), ("SST-2 (2,000/872)", [NEW], (1, 2, 3))],
    "extra": [("SST-2 held-out (1,600/400)", ["LoRA query/value + pooler, lr 5e-4"], (1,)),
              ("CoNLL-2003 (2,000/1,000)", [NEW, FULL], (1,)), ("SQuAD slice (600/300)", [NEW, FULL], (1,))],
    # The target on the real sets: the LoRA default against full fine-tuning, 3 seeds, seed by seed so
    # that a stage cut short still compares both on every set; the frozen encoder on SST-2.
    # LoRA at 5e-4 was 22 points behind full fine-tuning on CoNLL-2003 dev (seed 1): rates chosen on held-out
    # training sentences.
    "screen_ner": [("CoNLL-2003 held-out (2,000/1,000 train)", [FULL, "LoRA all-linear + pooler, lr 5e-4",
                    "LoRA all-linear + pooler, lr 1e-3", "LoRA all-linear + pooler, lr 2e-3"], (1,))],
    "screen_qa": [("SQuAD held-out (600/300 train)", ["LoRA all-linear + pooler, lr 1e-3",
                   "LoRA all-linear + pooler, lr 2e-3"], (1,))],
    # After the fix that gives a QA LoRA run its token types (they were dropped): what LoRA does with them.
    "screen_qa_token_types": [("SQuAD held-out (600/300 train)", [
        "LoRA all-linear, head + token-type embeddings in full, lr 2e-3",
        "LoRA all-linear + pooler, lr 2e-3, capitals not marked"], (1,))],
    "real": [*[(name, [LORA_DEFAULT[name], FULL], (seed,)) for seed in (1, 2, 3) for name in REAL_SETS[:2]],
             *[(REAL_SETS[2], [LORA_DEFAULT[REAL_SETS[2]], FULL], (seed,)) for seed in (1, 2, 3)]],  # QA: slowest
    "frozen": [("SST-2 (2,000/872)", list(FROZEN), (1, 2, 3))],
}


def write_sets():
    """The 3-class demo set and the SST-2 screening split, made from the project's data (never committed)."""
    SETS_DIR.mkdir(parents=True, exist_ok=True)
    if not (SETS_DIR / "demo3_dev.jsonl").exists():
        demo = demo_data.write(OUT / "data" / "demo")
        rows = [json.loads(line) for line in open(demo / "nli/train.jsonl")]
        dev = [json.loads(line) for line in open(demo / "nli/dev_matched.jsonl")]
        for name, part in (("train", rows[:240]), ("heldout", rows[240:300]), ("dev", dev[:60])):
            with open(SETS_DIR / f"demo3_{name}.jsonl", "w") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in part)
    if not (SETS_DIR / "sst2_heldout400.tsv").exists():
        lines = (DATA / "sst2/train.tsv").read_text().splitlines(keepends=True)  # copied as they are
        header, rows = lines[0], lines[1:2001]
        (SETS_DIR / "sst2_1600.tsv").write_text(header + "".join(rows[:1600]))
        (SETS_DIR / "sst2_heldout400.tsv").write_text(header + "".join(rows[1600:]))
    if not (SETS_DIR / "conll_heldout1000.txt").exists():
        rows = data.read_file(str(DATA / "conll2003/train.txt"), conll=data.ConllColumns("tokens", "ner_tags"))
        sentences = ["".join(f"{word} {tag}\n" for word, tag in zip(row["tokens"], row["ner_tags"]))
                     for row in rows.select(range(2000, 3000))]  # after the 2,000 that train
        (SETS_DIR / "conll_heldout1000.txt").write_text("\n".join(sentences))
    if not (SETS_DIR / "squad_heldout300.jsonl").exists():
        rows = data.read_file(str(DATA / "squad/train.json"))
        rows.select(range(len(rows) - 300, len(rows))).to_json(SETS_DIR / "squad_heldout300.jsonl")


def flags_of(set_name, variant):
    data_flags, _ = SETS[set_name]
    return [*data_flags, "--logging_steps", "10", *VARIANTS[variant]]


def run_stage(stage):
    done = {(r["set"], r["variant"], r["seed"]) for r in read_results()}
    for set_name, variants, seeds in STAGES[stage]:
        for seed in seeds:  # seed by seed: a stage cut short still compares its variants
            for variant in variants:
                if (set_name, variant, seed) in done:
                    continue
                flags = flags_of(set_name, variant)
                result = run(stage, variant, flags, seed)
                state = json.loads((run_dir(flags, seed) / "trainer_state.json").read_text())
                losses = [e["loss"] for e in state["log_history"] if "loss" in e]
                metric = SETS[set_name][1]
                record = {"stage": stage, "set": set_name, "variant": variant, "seed": seed, "metric": metric,
                          "value": result["results"][metric], "first_loss": losses[0], "last_loss": losses[-1],
                          "steps": state["global_step"], "trainable": result["trainable"],
                          "wall_s": round(result["wall_s"], 1), "command": result["command"]}
                with open(RESULTS, "a") as fh:  # at once: a run that finished is never lost
                    fh.write(json.dumps(record) + "\n")
                print(f"  {set_name} | {variant} | seed {seed}: {metric} {record['value']:.4f}, "
                      f"loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)


def read_results():
    return [json.loads(line) for line in open(RESULTS)] if RESULTS.exists() else []


def report():
    rows = read_results()
    lines = ["# LoRA and the frozen encoder on all-MiniLM-L6-v2 (issue 20)", "",
             "Written by `python studies/lora.py --report` from `studies/lora_results.jsonl` (every run, its "
             "command). Mean ± std over the seeds run; loss: first → last logged training loss (every 10 "
             "steps). Wall times are not comparable: the 2 cores were shared with other jobs (load 4-11).", ""]
    for stage in dict.fromkeys(r["stage"] for r in rows):
        for set_name in dict.fromkeys(r["set"] for r in rows if r["stage"] == stage):
            group = [r for r in rows if r["stage"] == stage and r["set"] == set_name]
            lines += [f"## {stage}: {set_name}", "", f"| variant | {group[0]['metric']} | seeds | trainable | "
                      "loss first → last | steps | wall s |", "|---|---|---|---|---|---|---|"]
            for variant in dict.fromkeys(r["variant"] for r in group):
                runs = [r for r in group if r["variant"] == variant]
                values = [r["value"] for r in runs]
                spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
                lines.append(f"| {variant} | {statistics.mean(values):.3f}{spread} | {len(runs)} | "
                             f"{runs[0]['trainable']:,} | {statistics.mean(r['first_loss'] for r in runs):.2f} → "
                             f"{statistics.mean(r['last_loss'] for r in runs):.2f} | {runs[0]['steps']} | "
                             f"{statistics.mean(r['wall_s'] for r in runs):.0f} |")
            lines.append("")
    done = {(r["set"], r["variant"], r["seed"]) for r in rows}
    missing = [f"{name} ({set_name}, {variant}, seed {seed})" for name, stage in STAGES.items()
               for set_name, variants, seeds in stage for seed in seeds for variant in variants
               if (set_name, variant, seed) not in done]
    if missing:
        lines += ["Planned but not run yet (`python studies/lora.py STAGE` runs them; finished runs are kept):", "",
                  *[f"- {m}" for m in missing], ""]
    lines += ["Commands (one per run, seed 1 shown where several):", ""]
    seen = set()
    for r in rows:
        if (r["set"], r["variant"]) not in seen:
            seen.add((r["set"], r["variant"]))
            lines.append(f"- {r['set']}, {r['variant']}: `python {r['command']}`")
    REPORT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    stages = [a for a in sys.argv[1:] if a != "--report"]
    if "--report" not in sys.argv:
        write_sets()
        for name in stages or list(STAGES):
            run_stage(name)
    report()
