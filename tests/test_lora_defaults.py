"""Issue 20: LoRA and the frozen encoder must learn on the packaged model, and a run that did not says so."""
import pytest
import torch
from safetensors.torch import load_file
from transformers import (AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, pipeline)

from common import args, modeling
from conftest import FAST, read_json, run_recipe, write_jsonl

TASK = "text_classification"
STALLED = "training loss fell only from"


def _lora_model(model_path, out, auto_class, task_type, *flags, num_labels=3):
    cfg = args.parse(argv=["--model_name_or_path", str(model_path), "--output_dir", str(out), "--lora", *flags])
    config = modeling.load_config(cfg.model, num_labels=num_labels)
    return modeling.load_model(cfg.model, auto_class, config, task_type)


def test_default_lora_adapts_every_linear_layer_and_trains_the_pooler_in_full(tiny_model, tmp_path):
    model = _lora_model(tiny_model, tmp_path, AutoModelForSequenceClassification, "SEQ_CLS")
    lora = model.peft_config["default"]
    assert (lora.r, lora.lora_alpha) == (8, 16)
    adapted = {name.rsplit(".", 1)[0] for name, _ in model.named_parameters() if "lora_A" in name}
    assert len(adapted) == 2 * 6  # per layer: query, key, value, attention output, intermediate, output
    assert not any("pooler" in name or "classifier" in name for name in adapted)
    trained = {name for name, p in model.named_parameters() if p.requires_grad and "lora_" not in name}
    assert trained == {f"{prefix}.modules_to_save.default.{w}" for prefix, w in (
        ("base_model.model.bert.pooler", "dense.weight"), ("base_model.model.bert.pooler", "dense.bias"),
        ("base_model.model.classifier", "weight"), ("base_model.model.classifier", "bias"))}
    # Token-level heads have no pooler; their head (trained in full) is not adapted as well.
    tagger = _lora_model(tiny_model, tmp_path, AutoModelForTokenClassification, "TOKEN_CLS")
    assert not any("classifier" in n and "lora_" in n for n, _ in tagger.named_parameters())
    # The PEFT conventions override the defaults.
    old = _lora_model(tiny_model, tmp_path, AutoModelForSequenceClassification, "SEQ_CLS", "--lora_target_modules",
                      "query", "value", "--lora_modules_to_save", "classifier", "--lora_r", "4", "--use_rslora")
    assert set(old.peft_config["default"].target_modules) == {"query", "value"}
    assert old.peft_config["default"].use_rslora and old.peft_config["default"].r == 4
    assert not any("pooler" in n and p.requires_grad for n, p in old.named_parameters())


@pytest.mark.parametrize("auto_class, task_type", [(AutoModelForSequenceClassification, "SEQ_CLS"),
                                                  (AutoModelForTokenClassification, "TOKEN_CLS"),
                                                  (AutoModelForQuestionAnswering, "QUESTION_ANS")])
def test_a_lora_model_reads_token_types_as_its_merged_model_does(tiny_model, tmp_path, auto_class, task_type):
    """peft's question-answering wrapper dropped token_type_ids: a QA --lora run trained and evaluated on token
    type 0 everywhere, then saved a merged model that reads them. Trained, saved and reloaded adapters, and
    the merged model, must give one answer for inputs whose second segment is type 1."""
    torch.manual_seed(0)
    model = _lora_model(tiny_model, tmp_path, auto_class, task_type, num_labels=2).eval()  # QA: start and end
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:  # as after training: zero B would make the adapters a no-op
                weight.normal_(std=0.5)
    ids = torch.randint(1000, 2000, (2, 12))
    second = torch.zeros_like(ids)
    second[:, 6:] = 1

    def outputs(m, token_types):
        with torch.no_grad():
            out = m(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=token_types)
        return torch.cat([out[key].flatten() for key in out.keys() if key.endswith("logits")])

    adapted = outputs(model, second)
    assert not torch.allclose(adapted, outputs(model, torch.zeros_like(ids)), atol=1e-4)  # token types matter
    model.save_pretrained(tmp_path / "adapter")
    model.base_model.model.config.save_pretrained(tmp_path / "adapter")
    reloaded = modeling.load_trained(tmp_path / "adapter", auto_class).eval()
    merged = model.merge_and_unload().eval()
    torch.testing.assert_close(outputs(reloaded, second), adapted, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(outputs(merged, second), adapted, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """The issue's shape: a small 3-class text-pair set (premise, hypothesis), from the project's demo data."""
    from common.tools import demo_data
    import random
    path = tmp_path_factory.mktemp("three")
    write_jsonl(path / "train.jsonl", demo_data.nli_rows(96, random.Random(0)))
    return path


def test_default_lora_learns_on_the_packaged_model(three_classes, tmp_path):
    """All-MiniLM-L6-v2 was trained for mean pooling: with its [CLS] pooler frozen and only query/value adapted
    (the defaults before issue 20), these 36 steps at 5e-4 leave the loss where it started (1.100 -> 1.077,
    measured with --lora_target_modules query value --lora_modules_to_save classifier). With the pooler trained
    in full and every linear layer adapted it falls far below."""
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--train_file", three_classes / "train.jsonl", "--text_column_names", "premise,hypothesis",
                      "--do_train", "--lora", "--learning_rate", "5e-4", "--num_train_epochs", "6",
                      "--output_dir", out, *FAST, "--logging_steps", "6", "--seed", "1")
    losses = [e["loss"] for e in read_json(out / "trainer_state.json")["log_history"] if "loss" in e]
    assert len(losses) == 6 and min(losses[1:]) < 0.5 * losses[0], losses
    assert STALLED not in proc.stderr


def test_a_run_that_hardly_learned_says_so_in_one_line(tiny_model, three_classes, tmp_path):
    common = ["--model_name_or_path", tiny_model, "--train_file", three_classes / "train.jsonl",
              "--text_column_names", "premise,hypothesis", "--do_train", "--num_train_epochs", "1", *FAST,
              "--logging_steps", "2", "--learning_rate", "1e-7"]
    lora = run_recipe(TASK, *common, "--lora", "--output_dir", tmp_path / "lora")
    lines = [line for line in lora.stderr.splitlines() if STALLED in line]
    assert len(lines) == 1 and "--lora" in lines[0] and "raise --learning_rate (now 1e-07" in lines[0], lines
    frozen = run_recipe(TASK, *common, "--freeze_encoder", "--output_dir", tmp_path / "frozen")
    lines = [line for line in frozen.stderr.splitlines() if STALLED in line]
    assert len(lines) == 1 and "--freeze_encoder" in lines[0] and "drop --freeze_encoder" in lines[0], lines
    full = run_recipe(TASK, *common, "--output_dir", tmp_path / "full")  # trains everything: not judged
    assert STALLED not in full.stderr


def test_frozen_encoder_can_train_the_pooler_and_still_loads_in_pipeline(tiny_model, three_classes, tmp_path):
    out = tmp_path / "out"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", three_classes / "train.jsonl",
               "--text_column_names", "premise,hypothesis", "--do_train", "--freeze_encoder", "--train_pooler",
               "--learning_rate", "1e-2", "--num_train_epochs", "1", "--output_dir", out, *FAST)
    before = AutoModelForSequenceClassification.from_pretrained(tiny_model).state_dict()
    after = load_file(out / "model.safetensors")
    moved = {name for name, value in after.items() if not torch.equal(value, before[name])}
    assert moved == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}
    prediction = pipeline("text-classification", model=str(out))({"text": "A man is running.", "text_pair": "x"})
    assert prediction["label"] in {"entailment", "neutral", "contradiction"}


@pytest.mark.parametrize("flags, message", [
    (["--train_pooler"], "--train_pooler is for --freeze_encoder without --cache_features"),
    (["--freeze_encoder", "--cache_features", "--train_pooler"], "--train_pooler is for --freeze_encoder"),
])
def test_train_pooler_needs_a_frozen_encoder_without_the_cache(tiny_model, three_classes, tmp_path, flags, message):
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", three_classes / "train.jsonl",
                      "--text_column_names", "premise,hypothesis", "--do_train", "--output_dir", tmp_path / "out",
                      *flags, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and message in last, last
    assert not (tmp_path / "out" / "all_results.json").exists()


def test_lora_without_a_learning_rate_gets_the_adapters_default_and_an_explicit_one_wins(tmp_path, caplog):
    out = ["--output_dir", str(tmp_path)]
    with caplog.at_level("WARNING", logger="common.args"):
        assert args.parse(argv=[*out, "--lora"]).training.learning_rate == args.LORA_LEARNING_RATE == 5e-4
    assert len([r for r in caplog.records if "--lora without --learning_rate" in r.getMessage()]) == 1
    assert args.parse(argv=[*out, "--lora", "--learning_rate", "1e-4"]).training.learning_rate == 1e-4
    assert args.parse(argv=[*out, "--lora", "--learning_rate=2e-4"]).training.learning_rate == 2e-4
    config = tmp_path / "c.yaml"
    config.write_text("lora: true\nlearning_rate: 3.0e-5\n")  # a config file's rate is given too
    assert args.parse(argv=[str(config), *out]).training.learning_rate == 3e-5
    assert args.parse(argv=out).training.learning_rate == 5e-5  # full fine-tuning: TrainingArguments' default
