"""The time-series recipe: a tiny PatchTST on short synthetic series (real Trainer, subprocess runs), the
pre-train -> fine-tune weight transfer, UCR data from aeon, and bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import PatchTSTForClassification, PatchTSTForPretraining

from common import args
from common.errors import UserError
from common.labels import LabelSet
from common.tasks import series_data, series_model
from conftest import OFFLINE_ENV, ROOT, read_json, read_jsonl, run_recipe

TASK = "time_series_classification"
TINY = ["--d_model", "16", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--ffn_dim", "32",
        "--patch_length", "8", "--per_device_train_batch_size", "16", "--report_to", "none", "--save_strategy", "no",
        "--disable_tqdm", "true", "--auto_bf16", "false", "--learning_rate", "3e-3"]


def waves(n, length=32, channels=1, seed=0, variable=False):
    """Class 'slow' is one sine period, 'fast' three; random phase, level and noise; several channels are
    shifted copies. variable: lengths between 24 and `length`."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = ["slow", "fast"][i % 2]
        steps = int(rng.integers(24, length + 1)) if variable else length
        t = np.linspace(0, 1, steps)
        series_ = [np.sin(2 * np.pi * (1 if label == "slow" else 3) * t + rng.uniform(0, 6) + c)
                   * rng.uniform(0.5, 3) + rng.uniform(-5, 5) + rng.normal(0, 0.1, steps) for c in range(channels)]
        rows.append({"id": f"s{i}", "series": [s.round(4).tolist() for s in series_], "label": label})
    return rows


def write_wide_csv(path, rows):
    """One column per time step (univariate)."""
    pd.DataFrame([{"id": r["id"], "label": r["label"], **{f"t{j}": v for j, v in enumerate(r["series"][0])}}
                  for r in rows]).to_csv(path, index=False)
    return path


def run_pretrain(*argv):
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / TASK / "pretrain.py"), *map(str, argv)], cwd=ROOT,
                          env=OFFLINE_ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def backbone(model):
    return {k: v for k, v in model.state_dict().items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """pretrain.py on univariate series of length 32: a backbone checkpoint."""
    tmp = tmp_path_factory.mktemp("ts_pretrain")
    write_wide_csv(tmp / "train.csv", waves(48))
    run_pretrain("--train_file", tmp / "train.csv", "--do_train", "--num_train_epochs", "3", "--output_dir",
                 tmp / "pretrained", *TINY)
    return tmp


def test_pretrain_then_fine_tune_carries_the_backbone_over(pretrained):
    """Every backbone tensor of the classifier built on the checkpoint equals the pre-trained one; only the
    head is new."""
    path = str(pretrained / "pretrained")
    source = PatchTSTForPretraining.from_pretrained(path)
    cfg = args.parse(series_data.SeriesArguments, ["--train_file", str(pretrained / "train.csv"), "--model_name_or_path",
                                              path, "--output_dir", str(pretrained / "unused")])
    raw = series_data.load(cfg)
    arrays = series_data.to_arrays(raw)
    config = series_model.model_config(cfg, arrays, LabelSet.from_splits(raw, "label"))
    model = series_model.model_factory(config)(cfg.model)
    expected, loaded = backbone(source), backbone(model)
    assert set(loaded) == set(expected) and len(expected) > 10
    for name, tensor in expected.items():
        assert torch.equal(loaded[name], tensor), name
    assert model.config.num_targets == 2 and model.config.context_length == 32
    assert not model.config.do_mask_input  # masking is for pre-training only

    # --reinit_top_layers 1: the top encoder layer is drawn afresh (norm statistics too), the rest is carried over.
    cfg = args.parse(series_data.SeriesArguments, ["--train_file", str(pretrained / "train.csv"), "--model_name_or_path",
                                              path, "--output_dir", str(pretrained / "unused"), "--reinit_top_layers", "1",
                                              "--do_train"])
    redrawn = backbone(series_model.model_factory(config)(cfg.model))
    top = f"model.encoder.layers.{model.config.num_hidden_layers - 1}."
    changed = {name for name, tensor in expected.items() if not torch.equal(redrawn[name], tensor)}
    assert changed and all(name.startswith(top) for name in changed)
    assert {n for n in expected if n.startswith(top) and n.endswith("weight")} <= changed


def test_linear_probe_on_the_pretrained_backbone_end_to_end(pretrained, tmp_path):
    """run.py --model_name_or_path <pretrain.py output> --freeze_encoder: the backbone's weights stay the
    pre-trained ones, the head learns; outputs like the other recipes."""
    write_wide_csv(tmp_path / "test.csv", waves(20, seed=1))
    out = tmp_path / "out"
    run_recipe(TASK, "--train_file", pretrained / "train.csv", "--test_file", tmp_path / "test.csv", "--do_train",
               "--do_predict", "--model_name_or_path", pretrained / "pretrained", "--freeze_encoder",
               "--num_train_epochs", "3", "--output_dir", out, *TINY)
    results = read_json(out / "all_results.json")
    assert results["predict_samples"] == 20 and "predict_accuracy" in results and "predict_f1_macro" in results
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == [f"s{i}" for i in range(20)]
    assert {r["label"] for r in rows} == {"slow", "fast"} and set(rows[0]["probabilities"]) == {"fast", "slow"}
    tuned = PatchTSTForClassification.from_pretrained(out)
    assert tuned.config.id2label == {0: "fast", 1: "slow"}
    source = dict(PatchTSTForPretraining.from_pretrained(pretrained / "pretrained").named_parameters())
    for name, param in tuned.named_parameters():
        if name.startswith("model."):
            assert torch.equal(param, source[name]), name


def test_multivariate_variable_length_with_pretraining_and_lora(tmp_path):
    """A list of lists per row (3 channels), lengths 24-40, in jsonl: resampled to the longest training series;
    --pretrain_epochs pre-trains on the training series, --lora adapts the attention/MLP projections; channel attention
    is on by itself."""
    rows = waves(32, length=40, channels=3, variable=True)
    with open(tmp_path / "train.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    out = tmp_path / "out"
    run_recipe(TASK, "--train_file", tmp_path / "train.jsonl", "--validation_file", tmp_path / "train.jsonl",
               "--do_train", "--do_eval", "--pretrain_epochs", "2", "--lora", "--num_train_epochs", "2",
               "--output_dir", out, *TINY)
    config = read_json(out / "config.json")
    assert config["num_input_channels"] == 3 and config["context_length"] == max(len(r["series"][0]) for r in rows)
    assert config["channel_attention"] and len(config["channel_means"]) == 3  # several channels: they attend to each other
    assert (out / "pretrained" / "model.safetensors").exists() and (out / "adapter" / "adapter_config.json").exists()
    adapter = read_json(out / "adapter" / "adapter_config.json")
    assert set(adapter["target_modules"]) == set(series_model.LORA_TARGETS)
    assert read_json(out / "all_results.json")["eval_samples"] == 32
    PatchTSTForClassification.from_pretrained(out)  # the merged model loads without PEFT


def test_wrong_channel_count_in_test_is_one_line_and_writes_nothing(tmp_path):
    write_wide_csv(tmp_path / "train.csv", waves(8))
    pd.DataFrame([{"series": json.dumps(r["series"]), "label": r["label"]} for r in waves(4, channels=2)]).to_csv(
        tmp_path / "test.csv", index=False)
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--train_file", tmp_path / "train.csv", "--test_file", tmp_path / "test.csv",
                      "--do_train", "--do_predict", "--output_dir", out, *TINY, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'test.csv'}: series have 2 channel(s)") and "has 1" in last, last
    assert "give every split the same channels" in last
    assert not out.exists()


def test_the_text_classifiers_pooling_flag_is_refused_here(tmp_path):
    write_wide_csv(tmp_path / "train.csv", waves(8))
    proc = run_recipe(TASK, "--train_file", tmp_path / "train.csv", "--do_train", "--classifier_pooling", "mean",
                      "--output_dir", tmp_path / "out", *TINY, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --classifier_pooling is for the text classifiers")
    assert not (tmp_path / "out").exists()


def _config(tmp_path, *argv):
    return args.parse(series_data.SeriesArguments, [*map(str, argv), "--output_dir", str(tmp_path / "o")])


def test_missing_values_inside_a_series_stop_the_run_trailing_ones_end_it(tmp_path):
    rows = waves(4)
    rows[1]["series"][0][30:] = [None, None]  # a shorter series: blank trailing cells
    write_wide_csv(tmp_path / "ok.csv", rows)
    arrays = series_data.to_arrays(series_data.load(_config(tmp_path, "--train_file", tmp_path / "ok.csv")))
    assert [a.shape for a in arrays["train"]] == [(1, 32), (1, 30), (1, 32), (1, 32)]
    rows[2]["series"][0][5] = None
    write_wide_csv(tmp_path / "gap.csv", rows)
    with pytest.raises(UserError, match=r"gap.csv: data row 3 has a missing or infinite value at time step 6 of "
                                        r"channel 1; fill it \(e.g. interpolate\) or drop the row"):
        series_data.to_arrays(series_data.load(_config(tmp_path, "--train_file", tmp_path / "gap.csv")))


def test_scaling_and_resampling():
    x = np.stack([np.arange(10.0) * 100 + 7, np.full(10, 3.0)])  # a ramp and a constant channel
    out = series_data.prepare(x, 19)
    assert out.shape == (19, 2) and out.dtype == np.float32
    assert out[:, 0].mean() == pytest.approx(0, abs=1e-5) and out[:, 0].std() == pytest.approx(1, abs=1e-5)
    assert np.allclose(np.diff(out[:, 0]), np.diff(out[:, 0])[0], atol=1e-5)  # still a straight ramp
    assert np.all(out[:, 1] == 0)  # a constant channel is not divided by zero


def test_ucr_sets_load_offline_by_name(tmp_path):
    raw = series_data.load(_config(tmp_path, "--dataset_name", "ucr/BasicMotions"))
    arrays = series_data.to_arrays(raw)
    assert len(arrays["train"]) == 40 and arrays["test"][0].shape == (6, 100)
    assert sorted(set(raw.splits["train"]["label"])) == ["badminton", "running", "standing", "walking"]
    with pytest.raises(UserError, match="--dataset_name ucr/NoSuchSet: aeon could not load it"):
        series_data.load(_config(tmp_path, "--dataset_name", "ucr/NoSuchSet"))


def test_ts_files_read_with_aeon(tmp_path):
    import aeon.datasets
    ts = Path(aeon.datasets.__file__).parent / "data" / "GunPoint" / "GunPoint_TRAIN.ts"
    raw = series_data.load(_config(tmp_path, "--train_file", ts, "--test_file", ts.with_name("GunPoint_TEST.ts")))
    assert len(raw.splits["train"]) == 50 and len(raw.splits["test"]) == 150
    assert series_data.to_arrays(raw)["train"][0].shape == (1, 150) and set(raw.splits["test"]["label"]) == {"1", "2"}


def test_dataset_scaling_keeps_amplitude_and_travels_with_the_model(tmp_path):
    """--scaling dataset (the default): each channel scaled by its mean and std over the training series (saved in the model's
    config), so a quiet and a loud series of the same shape stay apart; --scaling series makes them equal."""
    rows = waves(8, channels=2)
    with open(tmp_path / "train.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    cfg = _config(tmp_path, "--train_file", tmp_path / "train.jsonl", "--scaling", "dataset")
    raw = series_data.load(cfg)
    arrays = series_data.to_arrays(raw)
    config = series_model.model_config(cfg, arrays, LabelSet.from_splits(raw, "label"))
    pooled = np.concatenate(arrays["train"], axis=1)
    assert np.allclose(config.channel_means, pooled.mean(axis=1)) and np.allclose(config.channel_stds, pooled.std(axis=1))
    quiet = arrays["train"][0]
    loud = (quiet - quiet.mean(axis=1, keepdims=True)) * 10 + quiet.mean(axis=1, keepdims=True)
    assert np.allclose(series_data.prepare_for(config, loud).std(axis=0), 10 * series_data.prepare_for(config, quiet).std(axis=0),
                       rtol=1e-4)
    series_cfg = _config(tmp_path, "--train_file", tmp_path / "train.jsonl", "--scaling", "series")
    per_series = series_model.model_config(series_cfg, arrays)
    assert np.allclose(series_data.prepare_for(per_series, loud), series_data.prepare_for(per_series, quiet), atol=1e-5)
    config.save_pretrained(tmp_path / "model")  # the statistics travel with the model
    loaded = type(config).from_pretrained(tmp_path / "model")
    assert np.allclose(series_data.prepare_for(loaded, loud), series_data.prepare_for(config, loud))


def test_differences_and_position_free_patches_travel_with_the_model(tmp_path):
    """--differences adds each channel's step-to-step change as a channel (scaled by its own training statistics);
    --position_encoding none zeroes the patch positions through pre-training and fine-tuning. Both are saved in
    the model's config, so a series prepared for the saved model is the one training saw."""
    x = np.stack([np.arange(10.0) ** 2])  # slopes 1, 3, 5, ...
    out = series_data.prepare(x, 10, differences=True)
    assert out.shape == (10, 2)
    slope = np.diff(x[0], prepend=x[0, 0])
    assert np.allclose(out[:, 1], (slope - slope.mean()) / slope.std(), atol=1e-5)

    write_wide_csv(tmp_path / "train.csv", waves(24))
    out_dir = tmp_path / "out"
    run_recipe(TASK, "--train_file", tmp_path / "train.csv", "--do_train", "--differences", "true",
               "--position_encoding", "none", "--pretrain_epochs", "1", "--num_train_epochs", "1",
               "--output_dir", out_dir, *TINY)
    for path in (out_dir / "pretrained", out_dir):
        model = (PatchTSTForPretraining if path.name == "pretrained" else PatchTSTForClassification).from_pretrained(path)
        assert model.config.differences and model.config.num_input_channels == 2 and len(model.config.channel_means) == 2
        assert not model.model.encoder.positional_encoder.position_enc.any(), path
    cfg = _config(tmp_path, "--train_file", tmp_path / "train.csv", "--model_name_or_path", str(out_dir))
    arrays = series_data.to_arrays(series_data.load(cfg))
    config = series_model.model_config(cfg, arrays)  # one channel in the data, two in the model: accepted
    assert series_data.prepare_for(config, arrays["train"][0]).shape == (32, 2)


def test_a_search_on_folds_of_training_series(tmp_path):
    """--hpo_folds on the time-series recipe, whose encoded splits are lists of examples, not Datasets (its
    default augmentation turned off: the folds would train without it)."""
    write_wide_csv(tmp_path / "train.csv", waves(24))
    (tmp_path / "space.yaml").write_text("learning_rate: {low: 1.0e-3, high: 3.0e-3, log: true}\n")  # no backbone
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--train_file", tmp_path / "train.csv", "--do_train", "--hpo_trials", "1", "--hpo_folds",
                      "3", "--hpo_space", tmp_path / "space.yaml", "--augment", "", "--num_train_epochs", "1",
                      "--output_dir", out, *TINY)
    assert proc.stdout.count(" over 3 folds | ") == 1
    assert len(read_json(out / "best_run.json")["run_values"]) == 3
    assert read_json(out / "all_results.json")["train_samples"] == 24
