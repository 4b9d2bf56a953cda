"""Issue 10's training techniques do what they claim: cached features, discriminative learning rates,
class-imbalance losses and oversampling. Real recipes, real Trainer, the tiny model."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification, pipeline

from common import args, modeling, training
from common.errors import UserError
from common.techniques import imbalance, learning_rates
from conftest import FAST, OFFLINE_ENV, read_json, read_jsonl, run_recipe, write_jsonl

WORDS = ["good", "great", "fine", "bad", "awful", "poor"]


def _sentiment(n, offset=0, negatives_every=2):
    return [{"text": f"a {WORDS[i % 6]} film number {i}", "label": "neg" if i % negatives_every == 0 else "pos"}
            for i in range(offset, offset + n)]


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    path = tmp_path_factory.mktemp("sentiment")
    write_jsonl(path / "train.jsonl", _sentiment(48))
    write_jsonl(path / "dev.jsonl", _sentiment(16, 100))
    return path


def _train(task, model, out, *extra, data=None):
    files = ["--train_file", data / "train.jsonl", "--validation_file", data / "dev.jsonl"] if data else []
    return run_recipe(task, "--model_name_or_path", model, *files, "--do_train", "--do_eval", "--output_dir", out,
                      "--num_train_epochs", "3", "--learning_rate", "5e-3", "--auto_bf16", "false", "--seed", "3",
                      *FAST, *map(str, extra))


def test_cached_features_train_the_same_head_as_the_frozen_encoder(tiny_model, sentiment, tmp_path):
    """--cache_features gives the --freeze_encoder model (same predictions, same head), and the encoder never moves."""
    frozen, cached = tmp_path / "frozen", tmp_path / "cached"
    _train("text_classification", tiny_model, frozen, "--freeze_encoder", data=sentiment)
    _train("text_classification", tiny_model, cached, "--freeze_encoder", "--cache_features", data=sentiment)
    a, b = (read_jsonl(d / "validation_predictions.jsonl") for d in (frozen, cached))
    assert [r["predicted_label"] for r in a] == [r["predicted_label"] for r in b]
    for x, y in zip(a, b):
        assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-4)
    original = AutoModelForSequenceClassification.from_pretrained(tiny_model).state_dict()
    weights_a, weights_b = load_file(frozen / "model.safetensors"), load_file(cached / "model.safetensors")
    for name, value in weights_b.items():
        if name.startswith("bert."):  # the frozen encoder, saved in full: exactly the pre-trained weights
            assert torch.equal(value, original[name]), name
        else:
            assert torch.allclose(value, weights_a[name], atol=1e-4), name
    assert not torch.allclose(weights_b["classifier.weight"], original["classifier.weight"])  # the head trained
    text = read_jsonl(sentiment / "dev.jsonl")[0]["text"]
    assert pipeline("text-classification", model=str(cached))(text)[0]["label"] == b[0]["predicted_label"]


def test_cached_token_features_match_the_frozen_encoder_for_ner(tiny_model, demo_data, tmp_path):
    """Per-token outputs are cached without their padding and put back at the right positions."""
    data = ["--train_file", demo_data / "ner/train.jsonl", "--validation_file", demo_data / "ner/validation.jsonl",
            "--max_train_samples", "48", "--max_eval_samples", "16"]
    frozen, cached = tmp_path / "frozen", tmp_path / "cached"
    _train("ner", tiny_model, frozen, "--freeze_encoder", *data)
    _train("ner", tiny_model, cached, "--freeze_encoder", "--cache_features", *data)
    a, b = (read_json(d / "all_results.json") for d in (frozen, cached))
    assert a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-4)
    assert [r["predicted_tags"] for r in read_jsonl(frozen / "validation_predictions.jsonl")] == \
        [r["predicted_tags"] for r in read_jsonl(cached / "validation_predictions.jsonl")]


def test_cached_features_match_the_frozen_encoder_for_qa_without_padding(tiny_model, demo_data, tmp_path):
    """QA's loss also normalises over padded positions, which the cache leaves at zero (feature_cache's docstring):
    with one window per batch there is no padding, and training is then exactly the frozen encoder's."""
    data = ["--train_file", demo_data / "qa/train.json", "--validation_file", demo_data / "qa/dev.json",
            "--max_train_samples", "24", "--max_eval_samples", "12", "--num_train_epochs", "2",
            "--per_device_train_batch_size", "1"]
    frozen, cached = tmp_path / "frozen", tmp_path / "cached"
    _train("qa", tiny_model, frozen, "--freeze_encoder", *data)
    _train("qa", tiny_model, cached, "--freeze_encoder", "--cache_features", *data)
    a, b = (read_json(d / "all_results.json") for d in (frozen, cached))
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert (a["eval_exact_match"], a["eval_f1"]) == pytest.approx((b["eval_exact_match"], b["eval_f1"]))


def _trainer(tiny_model, tmp_path, *flags):
    cfg = args.parse(argv=["--model_name_or_path", tiny_model, "--output_dir", str(tmp_path), "--learning_rate",
                           "1e-3", "--weight_decay", "0.01", "--report_to", "none", *flags])
    config = modeling.load_config(cfg.model, num_labels=2)
    model = modeling.load_model(cfg.model, AutoModelForSequenceClassification, config, "SEQ_CLS")
    trainer = training.RecipeTrainer(model=model, args=cfg.training)
    trainer.run_args = cfg.run
    return trainer


def test_layerwise_decay_and_head_learning_rate_set_each_parameter_group(tiny_model, tmp_path):
    trainer = _trainer(tiny_model, tmp_path, "--layerwise_lr_decay", "0.5", "--head_learning_rate", "1e-2")
    optimizer = trainer.create_optimizer()
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    expected = {"bert.embeddings.word_embeddings.weight": (0.25e-3, 0.01),  # 2 layers: embeddings 0.5^2
                "bert.embeddings.LayerNorm.weight": (0.25e-3, 0.0),  # Trainer's no-decay split is kept
                "bert.encoder.layer.0.attention.self.query.weight": (0.5e-3, 0.01),
                "bert.encoder.layer.1.output.dense.bias": (1e-3, 0.0),
                "bert.pooler.dense.weight": (1e-3, 0.01),
                "classifier.weight": (1e-2, 0.01)}
    params = dict(trainer.model.named_parameters())
    for name, (lr, decay) in expected.items():
        assert lr_of[id(params[name])] == (pytest.approx(lr), decay), name
    assert len(lr_of) == len(params)  # every parameter in exactly one group
    assert type(optimizer) is type(_trainer(tiny_model, tmp_path).create_optimizer())  # same optimizer class

    # Under LoRA only adapters and the head (with the pooler) train; the adapters of layer 0 get layer 0's rate.
    rates = learning_rates.learning_rate_of(_trainer(tiny_model, tmp_path, "--lora").model, 1e-3, None, 0.5)
    assert all("lora_" in n or "classifier" in n or "pooler" in n for n in rates)
    layer_0 = [lr for n, lr in rates.items() if ".layer.0." in n]
    assert layer_0 and layer_0 == pytest.approx([0.5e-3] * len(layer_0))


def test_average_last_epochs_saves_the_mean_of_the_last_epochs_weights(tiny_model, sentiment, tmp_path):
    """The saved model (the one evaluated: run() saves before it evaluates) is the mean of the weights at the
    last 2 of 3 epochs' ends, which Trainer also saves as checkpoints."""
    out = tmp_path / "averaged"
    _train("text_classification", tiny_model, out, "--average_last_epochs", "2", "--save_strategy", "epoch",
           data=sentiment)
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert len(checkpoints) == 3
    last_two = [load_file(path / "model.safetensors") for path in checkpoints[1:]]
    saved = load_file(out / "model.safetensors")
    assert not torch.equal(last_two[0]["classifier.weight"], last_two[1]["classifier.weight"])  # it trained
    for name, value in saved.items():
        assert torch.allclose(value, (last_two[0][name] + last_two[1][name]) / 2, atol=1e-6), name


def test_reinit_top_layers_redraws_only_the_top_layers_and_the_pooler(tiny_model, tmp_path):
    pretrained = dict(_trainer(tiny_model, tmp_path).model.named_parameters())
    redrawn = dict(_trainer(tiny_model, tmp_path, "--reinit_top_layers", "1", "--do_train").model.named_parameters())
    changed = {name for name, param in redrawn.items() if not torch.equal(param, pretrained[name])}
    top_weights = {n for n in pretrained if n.startswith(("bert.encoder.layer.1.", "bert.pooler."))
                   and n.endswith("weight") and "LayerNorm" not in n}  # a tiny random model's norms are 1 already
    assert top_weights and top_weights <= changed  # the seeded head (classifier) is the same in both
    assert all(n.startswith(("bert.encoder.layer.1.", "bert.pooler.")) for n in changed), changed
    assert torch.equal(redrawn["bert.encoder.layer.1.output.LayerNorm.weight"],
                       torch.ones_like(redrawn["bert.encoder.layer.1.output.LayerNorm.weight"]))
    std = redrawn["bert.encoder.layer.1.attention.self.query.weight"].std().item()
    assert std == pytest.approx(0.02, rel=0.2)  # the config's initializer range, as a new model's weights
    again = dict(_trainer(tiny_model, tmp_path, "--reinit_top_layers", "1", "--do_train").model.named_parameters())
    assert all(torch.equal(again[n], redrawn[n]) for n in changed)  # drawn from the run's seed


PLAIN_TRANSFORMERS = """
import sys
from transformers import pipeline
model, text, trust = sys.argv[1], sys.argv[2], sys.argv[3] == "trust"
try:
    print(pipeline("text-classification", model=model, trust_remote_code=trust or None)(text)[0]["label"])
except ValueError as err:
    print("refused:", str(err).splitlines()[0])
"""


def test_mean_pooling_reads_the_masked_mean_and_loads_only_as_itself(tiny_model, sentiment, tmp_path):
    """--classifier_pooling mean: the pooler reads the mean of the tokens the mask keeps (padding changes
    nothing), the model saves as its own type, and plain transformers loads it only with trust_remote_code."""
    out = tmp_path / "mean"
    _train("text_classification", tiny_model, out, "--classifier_pooling", "mean", data=sentiment)
    assert read_json(out / "config.json")["model_type"] == "mean_pooled_bert"
    assert (out / "mean_pooling.py").exists() and "trust_remote_code=True" in (out / "README.md").read_text()

    model = modeling.load_trained(str(out), AutoModelForSequenceClassification).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    texts = ["a fine film", "a bad film number twelve , far too long and poor"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
        hidden = model.bert(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        by_hand = model.classifier(torch.tanh(model.bert.pooler.dense((hidden * mask).sum(1) / mask.sum(1))))
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
        as_cls = BertForSequenceClassification.from_pretrained(out).eval()(**batch).logits
    assert torch.allclose(logits, by_hand, atol=1e-5) and torch.allclose(logits[0], alone[0], atol=1e-5)
    assert not torch.allclose(logits, as_cls, atol=1e-3)  # the same weights read through [CLS] say otherwise

    predictions = read_jsonl(out / "validation_predictions.jsonl")
    text = read_jsonl(sentiment / "dev.jsonl")[0]["text"]
    plain = [subprocess.run([sys.executable, "-c", PLAIN_TRANSFORMERS, str(out), text, trust], cwd=tmp_path,
                            env=OFFLINE_ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
             for trust in ("trust", "no")]  # outside the project: the saved file is all the code there is
    assert plain[0].stdout.strip() == predictions[0]["predicted_label"], plain[0].stderr[-2000:]
    refused, _, why = plain[1].stdout.rpartition("refused:")  # after transformers' prompt, answered by no input
    assert refused and "custom code" in why, plain[1].stdout


def test_mean_pooling_with_lora_trains_the_pooler_it_reads(tiny_model, sentiment, tmp_path):
    """With --lora the pooler trains as a copy beside the adapters: the merged model reads the mean through the
    trained copy, so it predicts what the run predicted."""
    out = tmp_path / "lora"
    _train("text_classification", tiny_model, out, "--classifier_pooling", "mean", "--lora", data=sentiment)
    weights = load_file(out / "model.safetensors")
    pretrained = AutoModelForSequenceClassification.from_pretrained(tiny_model).state_dict()
    assert not torch.equal(weights["bert.pooler.dense.weight"], pretrained["bert.pooler.dense.weight"])
    model = modeling.load_trained(str(out), AutoModelForSequenceClassification).eval()
    assert type(model).__name__ == "MeanPooledBertForSequenceClassification"
    predicted = pipeline("text-classification", model=model, tokenizer=str(out))
    rows = read_jsonl(out / "validation_predictions.jsonl")
    labels = [p["label"] for p in predicted([r["input"] for r in rows])]
    assert labels == [r["predicted_label"] for r in rows]


def test_focal_and_weighted_losses():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0], [0.0, 4.0, 0.0]])
    labels = torch.tensor([0, 2, 1, -100])  # the last position is not scored (NER's special tokens)
    outputs = type("Out", (), {"logits": logits})
    weights = torch.tensor([1.0, 3.0, 0.5])
    plain = imbalance.classification_loss(False)(outputs, labels)
    assert plain == pytest.approx(F.cross_entropy(logits, labels).item())
    weighted = imbalance.classification_loss(False, weights)(outputs, labels)
    assert weighted == pytest.approx(F.cross_entropy(logits, labels, weight=weights).item())
    focal = imbalance.classification_loss(False, gamma=2.0)(outputs, labels)
    p_true = F.softmax(logits[:3], -1)[torch.arange(3), labels[:3]]
    assert focal == pytest.approx((-(1 - p_true) ** 2 * p_true.log()).mean().item())
    assert focal < plain  # confident right answers count less
    multi = imbalance.classification_loss(True, gamma=0.0)(outputs, (logits > 0.5).float())
    assert multi == pytest.approx(F.binary_cross_entropy_with_logits(logits, (logits > 0.5).float()).item())


def test_class_weights_count_tokens_and_oversampling_balances_classes(tiny_model, tmp_path):
    label_set = type("Labels", (), {"num_labels": 3, "problem_type": "single_label_classification",
                                    "names": ["O", "B-X", "I-X"]})
    tokens = imbalance.class_weights("balanced", label_set, [[-100, 0, 0, 1, -100], [-100, 0, 2, 2, -100]])
    assert tokens.tolist() == pytest.approx([6 / 9, 6 / 3, 6 / 6])

    write_jsonl(tmp_path / "train.jsonl", _sentiment(40, negatives_every=5))  # 8 neg : 32 pos
    write_jsonl(tmp_path / "dev.jsonl", _sentiment(10, 100))
    out = tmp_path / "out"
    _train("text_classification", tiny_model, out, "--oversample", "--focal_gamma", "2", "--class_weights",
           "balanced", "--num_train_epochs", "1", data=tmp_path)
    assert read_json(out / "all_results.json")["train_samples"] == 64  # 32 of each class
    assert len(read_jsonl(out / "validation_predictions.jsonl")) == 10  # evaluation untouched


@pytest.mark.parametrize("task, flags, message", [
    ("text_classification", ["--cache_features"], "--cache_features needs --freeze_encoder"),
    ("text_classification", ["--layerwise_lr_decay", "1.5"], "--layerwise_lr_decay 1.5: give a factor in (0, 1]"),
    ("text_classification", ["--focal_gamma", "-1"], "--focal_gamma -1.0: give 0"),
    ("ner", ["--oversample"], "--oversample applies to single-label classification"),
    ("text_classification", ["--average_last_epochs", "1"], "--average_last_epochs 1: give 2 or more"),
    ("text_classification", ["--average_last_epochs", "2", "--early_stopping_patience", "1", "--eval_strategy",
                             "epoch", "--validation_split_percentage", "25"],
     "--average_last_epochs with --early_stopping_patience: both choose the final weights"),
    ("ner", ["--reinit_top_layers", "3"], "--reinit_top_layers 3: the encoder has 2 layers"),
    ("text_classification", ["--reinit_top_layers", "1", "--lora"], "--reinit_top_layers with --lora"),
    ("ner", ["--classifier_pooling", "mean"], "--classifier_pooling mean: only BERT-style sequence classifiers"),
])
def test_bad_technique_flags_fail_in_one_line(tiny_model, sentiment, demo_data, tmp_path, task, flags, message):
    data = sentiment if task == "text_classification" else None
    extra = [] if data else ["--train_file", demo_data / "ner/train.jsonl", "--validation_file",
                             demo_data / "ner/validation.jsonl", "--max_train_samples", "8"]
    proc = run_recipe(task, "--model_name_or_path", tiny_model, "--do_train", "--output_dir", tmp_path / "out",
                      *flags, *extra, *([] if not data else ["--train_file", data / "train.jsonl"]), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and message in last, last
    assert not (tmp_path / "out" / "all_results.json").exists()


@pytest.mark.parametrize("flags, message", [
    (["--reinit_top_layers", "-1"], "--reinit_top_layers -1: give how many"),
    (["--layerwise_lr_decay", "0"], "--layerwise_lr_decay 0.0: give a factor"),
    (["--average_last_epochs", "2", "--load_best_model_at_end", "--eval_strategy", "epoch", "--save_strategy",
      "epoch"], "--average_last_epochs with --load_best_model_at_end"),
    (["--hpo_trials", "2", "--hpo_runs_per_trial", "0"], "--hpo_runs_per_trial 0: give 1 or more"),
])
def test_technique_flags_are_checked_before_the_data_is_read(tmp_path, flags, message):
    """args.parse stops a bad flag, so no run tokenizes a large training file only to refuse its flags."""
    argv = ["--train_file", str(tmp_path / "never_read.csv"), "--do_train", "--output_dir", str(tmp_path / "out")]
    with pytest.raises(UserError, match=message):
        args.parse(argv=argv + flags)
    assert not (tmp_path / "out").exists()
