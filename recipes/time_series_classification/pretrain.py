"""Self-supervised pre-training of a PatchTST backbone: random patches are masked and reconstructed (MSE on
the masked patches). Labels are not used. The output directory is a checkpoint that run.py fine-tunes:

    python recipes/time_series_classification/pretrain.py recipes/time_series_classification/pretrain.yaml
    python recipes/time_series_classification/run.py recipes/time_series_classification/config.yaml \
        --model_name_or_path outputs/ts_pretrain

Only the train split trains (--train_file or ucr/NAME's train split); pre-train on series you will not test on.
"""
import sys
from pathlib import Path

sys.path.insert(0, next(str(p) for p in Path(__file__).resolve().parents if (p / "common").is_dir()))

from transformers import PatchTSTForPretraining  # noqa: E402

from common import args, training  # noqa: E402
from common.errors import exits_cleanly  # noqa: E402
from common.tasks import series_data, series_model  # noqa: E402


@exits_cleanly
def main():
    cfg = args.parse(series_data.SeriesArguments)
    series_model.use_threads(cfg.data.torch_threads)
    raw = series_data.load(cfg, labelled=False)
    arrays = series_data.to_arrays(raw, cfg.data.series_column_name)
    raw, arrays = series_data.training_series(raw, arrays, cfg)  # --augment jitter,scale,slice: training series
    config = series_model.model_config(cfg, arrays)  # a new backbone sized to the data, or --model_name_or_path's
    encoded = series_data.features(arrays, config)

    def make_model(model_args):  # continue from a checkpoint's backbone, or start new
        model = series_model.pretraining_model(config, cfg.data.mask_ratio)
        if model_args.model_name_or_path:
            model = PatchTSTForPretraining.from_pretrained(model_args.model_name_or_path, config=model.config,
                                                           ignore_mismatched_sizes=True)
        return model

    trainers = training.TrainerFactory(make_model, None, encoded, series_data.collate, compute_metrics=None,
                                       main_metric=("loss", False))
    training.run(trainers, cfg, raw, encoded)


if __name__ == "__main__":
    main()
