"""The scorer is told which split it scores: the evaluations during training score the first evaluation set,
and after training each evaluation set and the test split is scored under its own name (a real Trainer, tiny
model, two steps)."""
import datasets
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from common import args, collators, data, metrics, modeling, training
from common.labels import SINGLE, LabelSet


def test_the_scorer_gets_the_name_of_each_split_it_scores(tiny_model, tmp_path):
    cfg = args.parse(argv=["--model_name_or_path", tiny_model, "--output_dir", str(tmp_path / "out"), "--do_train",
                           "--do_eval", "--do_predict", "--max_steps", "2", "--eval_strategy", "steps",
                           "--eval_steps", "1", "--per_device_train_batch_size", "4", "--report_to", "none",
                           "--save_strategy", "no", "--disable_tqdm", "true"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = {"text": ["good", "bad", "fine", "awful"] * 2, "label": ["pos", "neg", "pos", "neg"] * 2}
    splits = datasets.DatasetDict({name: datasets.Dataset.from_dict(rows) for name in ("train", "dev", "other", "test")})
    raw = data.RawData(splits, {name: name for name in splits})
    label_set = LabelSet.from_splits(raw, "label", problem_type=SINGLE)
    encoded = splits.map(lambda batch: {**tokenizer(batch["text"]), "labels": [label_set.encode(v) for v in
                                                                                 batch["label"]]},
                         batched=True, remove_columns=["text", "label"])
    config = modeling.load_config(cfg.model, label_set)
    scored, label_metrics = [], metrics.for_labels(label_set)

    def score(eval_prediction, split):
        scored.append(split)
        return label_metrics(eval_prediction, split)

    trainers = training.TrainerFactory(
        lambda model_args: modeling.load_model(model_args, AutoModelForSequenceClassification, config, "SEQ_CLS"),
        tokenizer, encoded, collators.dynamic_padding(tokenizer, cfg), compute_metrics=score,
        main_metric=("accuracy", True))
    training.run(trainers, cfg, raw, encoded)
    assert scored == ["dev", "dev", "dev", "other", "test"]  # 2 steps, each evaluated; then every set and test
