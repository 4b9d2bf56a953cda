"""Which parts of a BERT-style classifier int8 may touch: ONNX Runtime dynamic quantization variants against the
fp32 export, on SST-2 training sentences the model never saw (issue 23). Chooses the rule in
common/tools/export.py on training data, so bench/inference.py's dev-set figures stay a report.

    python bench/int8_choice.py                        # bench/out/serve/sst2 (first 20,000 rows), rows 60,000-61,999
    python bench/int8_choice.py MODEL_DIR --first 60000 --rows 2000

Per variant: label agreement with fp32, accuracy, batch-1 samples/s on the first 200 sentences (1 thread, model
call only) against the fp32 export's. Results are appended to bench/int8_choice_results.md with the date and load.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.throughput import append_section, device_name  # noqa: E402

RESULTS = ROOT / "bench/int8_choice_results.md"
DATA = ROOT.parent / "shared" / "data"
# In BERT's exported graph each layer's weight MatMuls come in this order.
ROLES = ("query", "key", "value", "attention output", "feed-forward in", "feed-forward out")


def weight_matmuls(graph):
    """[(node name, role, layer)] of the MatMuls that multiply by a weight, in graph order."""
    weights = {tensor.name for tensor in graph.graph.initializer}
    nodes = [n.name for n in graph.graph.node if n.op_type == "MatMul" and any(i in weights for i in n.input)]
    return [(name, ROLES[i % len(ROLES)], i // len(ROLES)) for i, name in enumerate(nodes)]


def variants(matmuls, layers):
    """name -> quantize_dynamic keywords."""
    def fp32(*roles, layer_set=()):
        return [name for name, role, layer in matmuls if role in roles or layer in layer_set]
    ffn_out = fp32("feed-forward out")
    return {
        "ORT defaults (per tensor, MatMul + Gather)": dict(per_channel=False),
        "per channel": dict(per_channel=True),
        "per channel, embeddings fp32": dict(per_channel=True, op_types_to_quantize=["MatMul"]),
        "per channel, feed-forward out fp32 (the rule before)": dict(per_channel=True, nodes_to_exclude=ffn_out),
        "per channel, embeddings + feed-forward out fp32": dict(
            per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_exclude=ffn_out),
        "per channel, embeddings + feed-forward out fp32, 7-bit weights": dict(
            per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_exclude=ffn_out, reduce_range=True),
        "per channel, embeddings + feed-forward out + attention output fp32": dict(
            per_channel=True, op_types_to_quantize=["MatMul"],
            nodes_to_exclude=fp32("feed-forward out", "attention output")),
        "per channel, embeddings + feed-forward out fp32, last layer fp32": dict(
            per_channel=True, op_types_to_quantize=["MatMul"],
            nodes_to_exclude=fp32("feed-forward out", layer_set={layers - 1})),
        "per channel, embeddings + feed-forward out fp32, first layer fp32": dict(
            per_channel=True, op_types_to_quantize=["MatMul"],
            nodes_to_exclude=fp32("feed-forward out", layer_set={0})),
    }


def session(path):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run(sess, batches):
    names = [i.name for i in sess.get_inputs()]
    return np.concatenate([sess.run(["logits"], {n: b[n] for n in names})[0] for b in batches])


def batch1_speed(sess, singles):
    names = [i.name for i in sess.get_inputs()]
    start = time.perf_counter()
    for one in singles:
        sess.run(["logits"], {n: one[n] for n in names})
    return len(singles) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", default=str(ROOT / "bench/out/serve/sst2"))
    parser.add_argument("--first", type=int, default=60000, help="first SST-2 training row (0-based, after the header)")
    parser.add_argument("--rows", type=int, default=2000)
    opts = parser.parse_args()

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoConfig, AutoTokenizer
    from common.tools import export

    work = Path(opts.model_dir) / "int8_choice"
    fp32_dir = work / "fp32"
    if not (fp32_dir / "model.onnx").exists():
        export.export(opts.model_dir, str(fp32_dir), overwrite=True)
    config = AutoConfig.from_pretrained(opts.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(opts.model_dir)
    lines = (DATA / "sst2/train.tsv").read_text().splitlines()[1 + opts.first:1 + opts.first + opts.rows]
    sentences, labels = zip(*(line.rsplit("\t", 1) for line in lines))
    label_ids = np.array([list(config.id2label.values()).index(label) for label in labels])
    batches = [dict(tokenizer(list(sentences[i:i + 32]), padding=True, truncation=True, max_length=128,
                              return_tensors="np")) for i in range(0, len(sentences), 32)]
    singles = [dict(tokenizer([s], truncation=True, max_length=128, return_tensors="np")) for s in sentences[:200]]

    reference = session(str(fp32_dir / "model.onnx"))
    fp32_labels = run(reference, batches).argmax(-1)
    fp32_speed = batch1_speed(reference, singles)
    graph = onnx.load(str(fp32_dir / "model.onnx"))
    del graph.graph.value_info[:]  # as export.py does: the quantizer re-infers shapes
    plain = str(work / "fp32_no_value_info.onnx")
    onnx.save(graph, plain)
    matmuls = weight_matmuls(graph)
    rows = [f"| fp32 export | {len(fp32_labels)}/{len(fp32_labels)} (100.00%) | "
            f"{(fp32_labels == label_ids).mean() * 100:.2f} | {fp32_speed:.1f} (1.00×) |"]
    print(rows[0], flush=True)
    for name, keywords in variants(matmuls, config.num_hidden_layers).items():
        path = str(work / "variant.onnx")
        quantize_dynamic(plain, path, weight_type=QuantType.QInt8, **keywords)
        sess = session(path)
        got = run(sess, batches).argmax(-1)
        speed = batch1_speed(sess, singles)
        same = int((got == fp32_labels).sum())
        rows.append(f"| {name} | {same}/{len(got)} ({same / len(got) * 100:.2f}%) | "
                    f"{(got == label_ids).mean() * 100:.2f} | {speed:.1f} ({speed / fp32_speed:.2f}×) |")
        print(rows[-1], flush=True)
    load = os.getloadavg()
    append_section(RESULTS, "int8 variants against fp32",
                   f"\n### {time.strftime('%Y-%m-%d %H:%M')}, {device_name()}, 1 thread, load average "
                   f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end (`python bench/int8_choice.py "
                   f"{' '.join(sys.argv[1:])}`)\n\nModel: {opts.model_dir}; sentences: SST-2 training rows "
                   f"{opts.first:,}–{opts.first + opts.rows - 1:,}.\n\n"
                   "| variant | labels equal to fp32 | accuracy | batch 1 samples/s (vs fp32 export) |\n"
                   "|---|---|---|---|\n" + "\n".join(rows) + "\n",
                   about="Written by `python bench/int8_choice.py`: which parts of the model ONNX Runtime's dynamic "
                         "int8 quantization may touch, measured on training sentences the model never saw.")


if __name__ == "__main__":
    main()
