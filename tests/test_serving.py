"""Serving: python -m common.tools.export (ONNX, int8) and python -m common.tools.predict, against the PyTorch model.

Models are trained by the recipes (tiny BERT, one short epoch; the packaged all-MiniLM-L6-v2 for int8 on
real weights) on the demo data; the exported model must give the same labels, entities and answer spans as
PyTorch, with logits within LOGIT_TOLERANCE. int8's agreement with fp32 is measured and printed.
"""
import subprocess
import sys

import numpy as np
import pytest
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from common import inference, onnx_models
from common.tasks import span_extraction
from common.tools import export, predict
from conftest import FAST, OFFLINE_ENV, ROOT, read_json, read_jsonl, run_recipe

LOGIT_TOLERANCE = 1e-4  # fp32 ONNX Runtime against PyTorch, largest |difference| over every logit
TASKS = {  # recipe, demo folder, train/validation/test files, the row field that must match
    "text_classification": ("sentiment", "train.csv", "validation.csv", "test.csv", "predicted_label"),
    "nli": ("nli", "train.jsonl", "dev_matched.jsonl", "test.jsonl", "predicted_label"),
    "ner": ("ner", "train.jsonl", "validation.jsonl", "test.jsonl", "entities"),
    "qa": ("qa", "train.json", "dev.json", "test.jsonl", "prediction"),
}


def _train(task, model, demo_data, out, *extra):
    folder, train, dev, test, _ = TASKS[task]
    d = demo_data / folder
    run_recipe(task, "--model_name_or_path", model, "--train_file", d / train, "--validation_file", d / dev,
               "--test_file", d / test, "--do_train", "--do_predict", "--num_train_epochs", "1",
               "--learning_rate", "1e-3", "--output_dir", out, *FAST, *extra,
               "--auto_bf16", "false")  # the recipe's own predictions in fp32, as common.tools.predict runs PyTorch
    return out


@pytest.fixture(scope="module")
def trained(tiny_model, demo_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    runs = {task: _train(task, tiny_model, demo_data, tmp / task, "--max_train_samples", "200") for task in TASKS}
    runs["lora"] = _train("text_classification", tiny_model, demo_data, tmp / "lora", "--max_train_samples", "200",
                          "--lora", "--lora_r", "4")
    return runs


def _export(model_dir, output, *flags):
    """The command line, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "common.tools.export", str(model_dir), "--format", "onnx", *flags,
                           "--output", str(output)], cwd=ROOT, env=OFFLINE_ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return output


def _predict(model_dir, task, demo_data, out):
    folder, *_, test, _ = TASKS[task]
    predict.predict(str(model_dir), str(demo_data / folder / test), str(out), progress=False)
    return read_jsonl(out)


def _logits(model_dir, texts, pairs=None):
    """Every output of the directory's model (PyTorch or ONNX) on the texts, as the Trainer lays them out."""
    model_dir = str(model_dir)
    auto_class = inference.task_of(model_dir, inference.trained_config(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    features = Dataset.from_dict(dict(tokenizer(texts, pairs, truncation=True, max_length=128)))
    return inference.batched_outputs(inference.load(model_dir, auto_class), tokenizer, features,
                                     onnx_models.TWINS[auto_class][1],
                                     per_token=auto_class is not AutoModelForSequenceClassification, batch_size=16)


def _demo_texts(task, demo_data):
    folder, *_, test, _ = TASKS[task]
    rows = read_jsonl(demo_data / folder / test) if test.endswith("jsonl") else None
    if task == "text_classification":
        import csv
        with open(demo_data / folder / test) as fh:
            return [r["text"] for r in csv.DictReader(fh)], None
    if task == "nli":
        return [r["premise"] for r in rows], [r["hypothesis"] for r in rows]
    if task == "ner":
        return [" ".join(r["tokens"]) for r in rows], None
    return [r["question"] for r in rows], [r["context"] for r in rows]


def _without_probabilities(rows):
    return [{k: v for k, v in row.items() if k != "probabilities"} for row in rows]


def _op_types(exported):
    import collections

    import onnx
    return collections.Counter(node.op_type for node in onnx.load(str(exported / "model.onnx")).graph.node)


def _agreement(a, b, key):
    return sum(x[key] == y[key] for x, y in zip(a, b)) / len(a)


@pytest.mark.parametrize("task", list(TASKS))
def test_onnx_export_predicts_as_pytorch(trained, task, demo_data, tmp_path):
    """fp32: every label / entity / span equal to PyTorch's (and to the recipe's own predictions.jsonl),
    logits within LOGIT_TOLERANCE; int8: agreement with fp32 measured, printed, above a sane floor."""
    key = TASKS[task][-1]
    fp32 = _export(trained[task], tmp_path / "onnx")
    int8 = _export(trained[task], tmp_path / "int8", "--quantize", "int8")
    assert read_json(int8 / "onnx_export.json")["quantize"] == "int8"
    assert _op_types(int8)["MatMulInteger"] > 0 and "MatMulInteger" not in _op_types(fp32)

    recipe_rows = read_jsonl(trained[task] / "predictions.jsonl")
    torch_rows = _predict(trained[task], task, demo_data, tmp_path / "torch.jsonl")
    onnx_rows = _predict(fp32, task, demo_data, tmp_path / "onnx.jsonl")
    int8_rows = _predict(int8, task, demo_data, tmp_path / "int8.jsonl")
    assert [r[key] for r in torch_rows] == [r[key] for r in recipe_rows]
    assert _without_probabilities(onnx_rows) == _without_probabilities(torch_rows)  # ids, inputs, labels, spans
    for ours, theirs in zip(onnx_rows, torch_rows):
        assert ours.get("probabilities", {}) == pytest.approx(theirs.get("probabilities", {}), abs=1e-5)
    agreement = _agreement(int8_rows, onnx_rows, key)
    print(f"\n{task}: int8 agrees with fp32 on {agreement:.1%} of {len(onnx_rows)} demo test rows ({key})")
    assert agreement >= 0.8  # measured 97-100% on these runs

    texts, pairs = _demo_texts(task, demo_data)
    for ours, theirs in zip(_logits(fp32, texts, pairs), _logits(trained[task], texts, pairs)):
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= LOGIT_TOLERANCE


def test_lora_run_exports_its_merged_model(trained, demo_data, tmp_path):
    """Both the run's merged output directory and its adapter directory export the same model."""
    merged = _export(trained["lora"], tmp_path / "merged")
    adapter = _export(trained["lora"] / "adapter", tmp_path / "adapter")
    texts, _ = _demo_texts("text_classification", demo_data)
    reference = _logits(trained["lora"], texts)[0]
    for exported in (merged, adapter):
        assert np.abs(_logits(exported, texts)[0] - reference).max() <= LOGIT_TOLERANCE
        assert read_json(exported / "config.json")["id2label"] == {"0": "negative", "1": "positive"}


def test_exported_directory_loads_in_pipeline(trained, tmp_path):
    """Serving code keeps calling pipeline(); only the model object it gets changes."""
    sentences = ["Anna Schmidt lives in Paris .", "The film is charming ."]
    for task, name, options in (("text_classification", "text-classification", {}),
                                ("ner", "token-classification", {"aggregation_strategy": "simple"})):
        exported = export.export(str(trained[task]), str(tmp_path / task))
        assert exported["check"]["same_argmax"]
        auto_class = inference.task_of(str(tmp_path / task), inference.trained_config(str(tmp_path / task)))
        results = []
        for directory in (trained[task], tmp_path / task):
            model = inference.load(str(directory), auto_class)
            results.append(pipeline(name, model=model, tokenizer=AutoTokenizer.from_pretrained(str(directory)),
                                    **options)(sentences))
        assert type(inference.load(str(tmp_path / task), auto_class)).__name__.startswith("OnnxModelFor")
        assert _rounded(results[0]) == _rounded(results[1])


def _rounded(value):
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(float(value), 4) if isinstance(value, (float, np.floating)) else value


def test_answer_takes_the_exported_model(trained, demo_data, tmp_path):
    exported = export.export(str(trained["qa"]), str(tmp_path / "qa"))
    assert exported["check"]["same_argmax"]
    rows = read_jsonl(demo_data / "qa" / "test.jsonl")[:20]
    questions, contexts = [r["question"] for r in rows], [r["context"] for r in rows]
    assert span_extraction.answer(str(tmp_path / "qa"), questions, contexts) == span_extraction.answer(
        str(trained["qa"]), questions, contexts)


def test_int8_on_the_packaged_model(demo_data, tmp_path):
    """Real all-MiniLM-L6-v2 weights, fine-tuned briefly on the demo sentiment data: int8 keeps its labels."""
    run = _train("text_classification", _packaged_model(), demo_data, tmp_path / "run", "--max_train_samples", "192",
                 "--learning_rate", "1e-4")
    fp32 = _export(run, tmp_path / "onnx")
    int8 = _export(run, tmp_path / "int8", "--quantize", "int8")
    torch_rows = _predict(run, "text_classification", demo_data, tmp_path / "torch.jsonl")
    onnx_rows = _predict(fp32, "text_classification", demo_data, tmp_path / "onnx.jsonl")
    assert _without_probabilities(onnx_rows) == _without_probabilities(torch_rows)
    int8_rows = _predict(int8, "text_classification", demo_data, tmp_path / "int8.jsonl")
    agreement = _agreement(int8_rows, torch_rows, "predicted_label")
    texts, _ = _demo_texts("text_classification", demo_data)
    drift = np.abs(_logits(int8, texts)[0] - _logits(run, texts)[0]).max()
    print(f"\npackaged model: int8 agrees with fp32 on {agreement:.1%} of {len(torch_rows)} rows; "
          f"largest logit change {drift:.3f}")
    assert agreement >= 0.9
    assert np.abs(_logits(fp32, texts)[0] - _logits(run, texts)[0]).max() <= LOGIT_TOLERANCE


def _packaged_model():
    from common.modeling import default_model_path
    return default_model_path()


def test_patchtst_exports(tmp_path):
    """A PatchTST classifier (what the time-series recipe saves) exports, same logits on random series."""
    from transformers import PatchTSTConfig, PatchTSTForClassification
    config = PatchTSTConfig(num_input_channels=2, context_length=32, patch_length=8, patch_stride=8, num_targets=3,
                            d_model=16, num_attention_heads=2, num_hidden_layers=1, ffn_dim=32)
    PatchTSTForClassification(config).save_pretrained(tmp_path / "ts")
    info = export.export(str(tmp_path / "ts"), str(tmp_path / "onnx"))
    assert info["check"]["same_argmax"] and info["check"]["max_abs_diff"]["prediction_logits"] <= LOGIT_TOLERANCE


def _cli(module, *argv):
    return subprocess.run([sys.executable, "-m", module, *map(str, argv)], cwd=ROOT, env=OFFLINE_ENV,
                          capture_output=True, text=True)


def test_predict_errors_are_one_line_and_write_nothing(trained, tmp_path):
    out = tmp_path / "predictions.jsonl"
    (tmp_path / "reviews.csv").write_text("review\ngreat\n")
    (tmp_path / "latin1.csv").write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    cases = [(tmp_path / "reviews.csv", "no column 'text'"), (tmp_path / "latin1.csv", "UTF-8"),
             (tmp_path / "broken.parquet", "could not be read"), (tmp_path / "missing.csv", "not found")]
    for path, expected in cases:
        proc = _cli("common.tools.predict", trained["text_classification"], "--input", path, "--output", out)
        assert proc.returncode == 2, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]  # above it, only datasets' progress bars
        assert last.startswith("error: ") and expected in last and "Traceback" not in proc.stderr
        assert not out.exists() and sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []
    proc = _cli("common.tools.export", trained["ner"], "--format", "onnx", "--output", trained["ner"])
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_predict_reads_words_from_a_csv_cell(trained, tmp_path):
    (tmp_path / "new.csv").write_text("tokens\nAnna Schmidt lives in Paris .\n")
    rows = predict.predict(str(trained["ner"]), str(tmp_path / "new.csv"), str(tmp_path / "out.jsonl"),
                           progress=False)
    row = read_jsonl(tmp_path / "out.jsonl")[0]
    assert rows == 1 and row["tokens"] == ["Anna", "Schmidt", "lives", "in", "Paris", "."]
    assert len(row["predicted_tags"]) == 6
