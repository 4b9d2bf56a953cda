"""Inference speed and quality of one trained model per task, four ways, on the same dev inputs:
PyTorch fp32, PyTorch bf16 autocast, ONNX Runtime fp32 and ONNX Runtime int8 (python -m common.tools.export).

    python bench/inference.py                       # models in bench/out/serve/{sst2,conll2003,squad}
    python bench/inference.py sst2 --batch1 200     # one task; batch-1 timing on the first 200 inputs

Inputs: SST-2 dev sentences (872), CoNLL-2003 dev sentences (3,250) in windows, SQuAD v1.1 slice dev windows
(3 articles, 1,009 questions); ../shared/data beside the clone. The models come from the recipes (commands
in the README's Serving section); exports are made here when missing. Each set is encoded as its model was
trained (its run_config.yaml: window length and stride, sentences in document context, capitals and the
question's words marked). Per way: samples/s at batch 32 over the whole dev set, samples/s and p50/p95
latency at batch 1 (tokenised inputs, model call only, on the first --batch1 inputs), the dev metric from
the batch-32 pass, and how many predictions (labels, sentences' entity lists, answer texts) equal PyTorch
fp32's. Threads: --threads for both runtimes (default: every core). The CPU's flags and ONNX Runtime's time
per operator for int8 (its profiler) are printed and written;
results are appended to bench/inference_results.md with the date and the load average.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.throughput import append_section, device_name  # noqa: E402

RESULTS = ROOT / "bench/inference_results.md"
DATA = ROOT.parent / "shared" / "data"
MODELS = ROOT / "bench/out/serve"
WAYS = ("PyTorch fp32", "PyTorch bf16 autocast", "ONNX Runtime fp32", "ONNX Runtime int8")
CPU_FLAGS = ("avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")


def cpu_flags():
    flags = set()
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
    return {flag: flag in flags for flag in CPU_FLAGS}


class Task:
    """A dev set as model inputs, and how its outputs become predictions and a dev metric."""
    outputs, per_token = ("logits",), False
    key_column = "id"  # a column of the dev rows, handed to comparable()

    def comparable(self, prediction, row_key):
        return prediction

    def first(self, rows):
        return rows.select(range(min(self.limit, len(rows)))) if self.limit else rows

    def __init__(self, model_dir, limit=None):
        from transformers import AutoTokenizer
        self.limit = limit  # the first N dev rows only (sentences, questions)

        from common import args, inference
        self.model_dir = str(model_dir)
        self.settings = args.run_settings(self.model_dir)  # windows and marks as the model was trained with
        self.config = inference.trained_config(self.model_dir)
        self.auto_class = inference.task_of(self.model_dir, self.config)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.names = [self.config.id2label[i] for i in range(self.config.num_labels)]
        self.features = self.encode()
        self.inputs = self.features.select_columns(
            [c for c in self.tokenizer.model_input_names if c in self.features.column_names])


class Sst2(Task):
    metric, key_column = "accuracy", "sentence"

    def encode(self):
        from common import data
        from common.labels import LabelSet
        from common.tasks import classification
        self.rows = self.first(data.read_file(str(DATA / "sst2/dev.tsv")))
        encode = classification.encoder(self.tokenizer, LabelSet(self.names), ["sentence"], "label", 128)
        return self.rows.map(encode, batched=True, remove_columns=self.rows.column_names)

    def predictions(self, outputs):
        return [self.names[i] for i in outputs[0].argmax(-1)]

    def score(self, predicted):
        return sum(p == str(g) for p, g in zip(predicted, self.rows["label"])) / len(predicted)


class Conll(Task):
    metric, per_token, key_column = "entity F1", True, "tokens"

    def encode(self):
        from common import data
        from common.tasks import tagging
        self.rows = self.first(data.read_file(str(DATA / "conll2003/dev.txt"),
                                              conll=data.ConllColumns("tokens", "ner_tags")))
        self.tag_set = tagging.TagSet(self.names, "IOB2")
        encode = tagging.trained_window_encoder(self.tokenizer, self.tag_set, self.settings, "tokens", "ner_tags")
        return self.rows.map(encode, batched=True, with_indices=True, remove_columns=self.rows.column_names)

    def predictions(self, outputs):
        from common.tasks import tagging
        ids = tagging.words_from_windows(outputs[0].argmax(-1), self.features)
        return [[self.names[i] if i >= 0 else "O" for i in sentence] for sentence in ids]

    def comparable(self, tags, words):
        from common.tasks import tagging
        return tagging.entities(tags, words)  # the entity groups: type, word span, text

    def score(self, predicted):
        from common.tasks import tagging
        return tagging.entity_scores(self.rows["ner_tags"], predicted)["f1"]


class Squad(Task):
    metric, outputs, per_token = "F1", ("start_logits", "end_logits"), True

    def encode(self):
        from common import data
        from common.tasks import span_extraction
        self.rows = self.first(data.read_file(str(DATA / "squad/dev.json")))
        encode = span_extraction.trained_window_encoder(self.tokenizer, self.settings, "question", "context")
        return self.rows.map(encode, batched=True, with_indices=True, remove_columns=self.rows.column_names)

    def predictions(self, outputs):
        from common.tasks import span_extraction, squad
        options = {k: self.settings[k] for k in ("n_best_size", "max_answer_length") if k in self.settings}
        texts, _, _ = span_extraction.extract_answers(outputs, self.features, self.rows["context"],
                                                      squad.example_ids(self.rows), **options)
        return list(texts.values())

    def score(self, predicted):
        from common.tasks import squad
        ids = squad.example_ids(self.rows)
        golds = {i: squad.answers_of(a)[0] for i, a in zip(ids, self.rows["answers"])}
        return squad.score(dict(zip(ids, predicted)), golds)["f1"] / 100


TASKS = {"sst2": (Sst2, "SST-2 dev sentences"), "conll2003": (Conll, "CoNLL-2003 dev windows"),
         "squad": (Squad, "SQuAD v1.1 slice dev windows")}


def models(task, threads):
    """way -> (model, autocast?), the exports made first if missing."""
    import torch

    from common import inference
    from common.tools import export
    exported = {}
    for name, quantize in (("onnx", None), ("onnx-int8", "int8")):
        path = os.path.join(task.model_dir, name)
        if not os.path.exists(os.path.join(path, "model.onnx")):
            export.export(task.model_dir, path, quantize, overwrite=True)
        exported[name] = inference.load(path, task.auto_class, threads)
    torch_model = inference.load(task.model_dir, task.auto_class)
    return {WAYS[0]: (torch_model, False), WAYS[1]: (torch_model, True),
            WAYS[2]: (exported["onnx"], False), WAYS[3]: (exported["onnx-int8"], False)}


def run_way(task, model, bf16, batch1):
    import torch

    from common import inference
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        outputs = inference.batched_outputs(model, task.tokenizer, task.inputs, task.outputs, task.per_token, 32)
        batch32 = len(task.inputs) / (time.perf_counter() - start)
        single = task.inputs.select(range(min(batch1, len(task.inputs))))
        tensors = [{k: torch.tensor([v]) for k, v in single[i].items()} for i in range(len(single))]
        latencies = []
        with torch.no_grad():
            for example in tensors[:5]:
                model(**example)  # warm-up
            for example in tensors:
                t0 = time.perf_counter()
                model(**example)
                latencies.append(time.perf_counter() - t0)
    predicted = task.predictions(outputs)
    quantiles = statistics.quantiles(latencies, n=20)
    return {"batch32": batch32, "batch1": len(latencies) / sum(latencies), "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * quantiles[18], "metric": task.score(predicted), "predicted": predicted}


def int8_operator_times(model, task, runs=50):
    """ONNX Runtime's own profile of the int8 model at batch 1: share of time per operator type."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = model.session.get_session_options().intra_op_num_threads
    path = os.path.join(task.model_dir, "onnx-int8", "model.onnx")
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    import numpy as np
    for i in range(runs):
        example = task.inputs[i % len(task.inputs)]
        session.run(None, {k: np.array([v], dtype=np.int64) for k, v in example.items()})
    profile = session.end_profiling()
    with open(profile) as fh:
        events = [e for e in json.load(fh) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    os.remove(profile)
    totals = {}
    for event in events:
        op = event["args"]["op_name"]
        totals[op] = totals.get(op, 0) + event["dur"]
    whole = sum(totals.values()) or 1
    return {op: t / whole for op, t in sorted(totals.items(), key=lambda kv: -kv[1])[:5]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tasks", nargs="*", help=f"Of {', '.join(TASKS)}; default: all three.")
    parser.add_argument("--batch1", type=int, default=300, help="Inputs timed one at a time, per way.")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--limit", type=int, help="Only the first N dev rows of each set (sentences, questions).")
    opts = parser.parse_args()
    if set(opts.tasks) - set(TASKS):
        parser.error(f"tasks: choose from {', '.join(TASKS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(opts.threads)
    flags = cpu_flags()
    print("CPU flags:", ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items()),
          f"| torch CPU capability {torch.backends.cpu.get_cpu_capability()}")
    started = time.strftime("%Y-%m-%d %H:%M")
    rows, notes = [], []
    for name in opts.tasks or list(TASKS):
        make, what = TASKS[name]
        task = make(MODELS / name, opts.limit)
        results = {}
        for way, (model, bf16) in models(task, opts.threads).items():
            results[way] = run_way(task, model, bf16, opts.batch1)
            print(name, way, {k: v for k, v in results[way].items() if k != "predicted"}, flush=True)
            if way == WAYS[3]:
                notes.append(f"{name}: int8 time by operator (ONNX Runtime profile, batch 1): " + ", ".join(
                    f"{op} {share:.0%}" for op, share in int8_operator_times(model, task).items()))
        reference = results[WAYS[0]]
        for way, r in results.items():
            same = sum(task.comparable(a, x) == task.comparable(b, x)
                       for a, b, x in zip(r["predicted"], reference["predicted"], task.rows[task.key_column]))
            rows.append(f"| {name} ({len(task.inputs)} {what}) | {way} | {r['batch1']:.1f} | {r['p50_ms']:.1f} | "
                        f"{r['p95_ms']:.1f} | {r['batch32']:.1f} | {r['batch1'] / reference['batch1']:.2f}x | "
                        f"{r['metric']:.4f} ({task.metric}) | {same}/{len(r['predicted'])} |")
    load = os.getloadavg()
    header = (f"\n### {started}, {device_name()}, {opts.threads} threads, load average {load[0]:.1f} / {load[1]:.1f} / "
              f"{load[2]:.1f} (1/5/15 min) at the end (`python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}`)\n\n"
              f"CPU flags: {', '.join(f'{k} {chr(10003) if v else chr(10007)}' for k, v in flags.items())}; torch CPU "
              f"capability {torch.backends.cpu.get_cpu_capability()}; torch {torch.__version__}, onnxruntime "
              f"{_ort_version()}. Batch-1 timing on the first {opts.batch1} inputs of each set"
              f"{f'; the first {opts.limit} dev rows of each set only' if opts.limit else ''}.\n\n"
              "| task (inputs) | way | batch 1 samples/s | p50 ms | p95 ms | batch 32 samples/s | batch 1 vs PyTorch fp32 "
              "| dev metric | predictions equal to PyTorch fp32 |\n|---|---|---|---|---|---|---|---|---|\n")
    append_section(RESULTS, "Inference", header + "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n",
                   about="Written by `bench/inference.py`: PyTorch fp32 and bf16 autocast against ONNX Runtime fp32 "
                         "and int8 on the same dev inputs.")


def _ort_version():
    import onnxruntime
    return onnxruntime.__version__


if __name__ == "__main__":
    main()
