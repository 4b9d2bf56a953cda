"""Time-series classification: fine-tune a PatchTST transformer, pre-trained on the series themselves.

No pre-trained time-series weights are downloaded: `--pretrain_epochs N` first pre-trains the backbone by
masked-patch reconstruction on the training split's series (never the evaluation or test series), then
fine-tunes it with a classification head. Or pre-train once with pretrain.py and pass its output as
--model_name_or_path. Without either, PatchTST trains from scratch.

    python recipes/time_series_classification/run.py recipes/time_series_classification/config.yaml
    python recipes/time_series_classification/run.py config.yaml --dataset_name ucr/BasicMotions
    python recipes/time_series_classification/run.py config.yaml --model_name_or_path outputs/ts_pretrain
"""
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, next(str(p) for p in Path(__file__).resolve().parents if (p / "common").is_dir()))

from common import args, metrics, training  # noqa: E402
from common.data import TRAIN  # noqa: E402
from common.errors import UserError, exits_cleanly  # noqa: E402
from common.labels import SINGLE, LabelSet  # noqa: E402
from common.tasks import classification, series_data, series_model  # noqa: E402

logger = logging.getLogger(__name__)

# Tuned on the UCR sets of bench/time_series_results.md; the config file and the command line override them.
# (config.yaml also pre-trains: --pretrain_epochs stays opt-in, as it refuses --model_name_or_path.)
DEFAULTS = dict(num_train_epochs=60, learning_rate=1e-3, per_device_train_batch_size=8, per_device_eval_batch_size=256,
                lr_scheduler_type="cosine", augment=["jitter", "scale", "slice"], augment_factor=2,
                auto_bf16=False,  # a small model: fp32
                label_names=["target_values"])  # PatchTST's name for the labels (Trainer reads label_ids from it)


@dataclass
class TimeSeriesArguments(series_data.SeriesArguments):
    pretrain_epochs: int = field(
        default=0, metadata={"help": "First pre-train the backbone for this many epochs on the training split's "
                                     "series (masked patches; saved in output_dir/pretrained), then fine-tune it.",
                             **args.TRAINING_ONLY})
    pretrain_learning_rate: Optional[float] = field(default=None, metadata={"help": "Default: --learning_rate."})


@exits_cleanly
def main():
    cfg = args.parse(TimeSeriesArguments, defaults=DEFAULTS)
    data_args = cfg.data
    series_model.use_threads(data_args.torch_threads)

    # Data and labels: ucr/NAME, .ts or csv/parquet rows; checked (columns, NaNs, channels) before anything is written.
    raw = series_data.load(cfg)
    label_column = data_args.label_column_name
    label_set = LabelSet.from_splits(raw, label_column, data_args.label_list, data_args.strict_labels,
                                     problem_type=SINGLE)
    classification.drop_unlabelled(raw, label_set, label_column)
    arrays = series_data.to_arrays(raw, data_args.series_column_name)
    raw, arrays = series_data.training_series(raw, arrays, cfg)  # --augment jitter,scale,slice: training series

    # Model shape from the data (channels, length, patches) or from the checkpoint; series resampled and scaled to it.
    if data_args.pretrain_epochs and (cfg.model.model_name_or_path or not cfg.training.do_train):
        raise UserError("--pretrain_epochs pre-trains a new backbone before training: drop --model_name_or_path, "
                        "and pass --do_train")
    config = series_model.model_config(cfg, arrays, label_set)
    encoded = series_data.features(arrays, config, label_set, raw, label_column)

    # Optional self-supervised pre-training on the training series only; its backbone is then fine-tuned.
    pretrained = None
    if data_args.pretrain_epochs:
        pretrained = os.path.join(cfg.training.output_dir, "pretrained")
        result = series_model.pretrain(config, encoded[TRAIN], cfg.training, pretrained, data_args.pretrain_epochs,
                                       data_args.mask_ratio, data_args.pretrain_learning_rate)
        logger.warning("pre-trained on %d training series: loss %.4f, saved in %s", len(encoded[TRAIN]),
                       result["train_loss"], pretrained)

    trainers = training.TrainerFactory(  # a Trainer per run, or per trial under --hpo_trials
        series_model.model_factory(config, pretrained), None, encoded, series_data.collate,
        compute_metrics=metrics.for_labels(label_set), main_metric=metrics.main_metric(SINGLE))
    training.run(trainers, cfg, raw, encoded, series_data.prediction_writer(label_set, label_column))


if __name__ == "__main__":
    main()
