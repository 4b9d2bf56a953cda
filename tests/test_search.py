"""Optuna search through Trainer.hyperparameter_search: real SQLite storage, real recipes in subprocesses."""
import collections
import os
import shutil
import signal
import subprocess
import sys
import time

import datasets
import optuna
import pytest
import yaml
from transformers import AutoModelForSequenceClassification, pipeline

from common import args, data, modeling, training
from common.errors import UserError
from conftest import FAST, OFFLINE_ENV, ROOT, read_json, run_recipe

TASK = "text_classification"
# Small and fast: the tiny model learns the demo sentiment data at these learning rates.
SPACE = {"learning_rate": {"low": 3e-4, "high": 3e-3, "log": True}, "num_train_epochs": [2],
         "per_device_train_batch_size": [16], "warmup_steps": {"low": 0.0, "high": 0.2}}


def _search_args(model, demo_data, out, space_file, *extra):
    return ["recipes/text_classification/config.yaml", "--model_name_or_path", model, "--output_dir", out,
            "--train_file", demo_data / "sentiment/train.csv", "--validation_file",
            demo_data / "sentiment/validation.csv", "--test_file", demo_data / "sentiment/test.csv",
            "--max_train_samples", "256", "--hpo_space", space_file, *FAST, "--save_strategy", "epoch", *extra]


def _space(tmp_path, **changes):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**SPACE, **changes}))
    return path


def _study(storage_path, name="search"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{storage_path}")


def _finished(study):
    return [t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                         optuna.trial.TrialState.PRUNED)]


def test_search_writes_reports_and_trains_the_best_again(tiny_model, demo_data, tmp_path):
    out = tmp_path / "out"
    proc = run_recipe(TASK, *_search_args(tiny_model, demo_data, out, _space(tmp_path), "--hpo_trials", "3", "--hpo_seed", "1"))
    assert proc.stdout.count("search: trial ") == 3  # a progress line per trial

    study = _study(out / "hpo.db")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2]
    for trial in _finished(study):
        assert len(trial.intermediate_values) == 2  # every evaluation (one per epoch) reported, for pruning
        assert trial.value == max(trial.intermediate_values.values())  # the best evaluation, not the last

    best = read_json(out / "best_run.json")
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    assert best["metric"] == "eval_accuracy" and best["direction"] == "maximize"
    assert set(best["params"]) == set(SPACE)
    assert len((out / "trials.csv").read_text().strip().splitlines()) == 1 + 3
    for plot in ("hpo_history.png", "hpo_importances.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
    assert not list(out.glob("run-*"))  # trial checkpoints are cleaned up

    # The best settings trained again, saved like a normal run; run_config.yaml repeats it without a search.
    results = read_json(out / "all_results.json")
    assert results["hpo_best_trial"] == best["trial"]
    assert results["eval_accuracy"] == pytest.approx(best["value"])  # the best checkpoint, as in its trial
    resolved = yaml.safe_load((out / "run_config.yaml").read_text())
    assert resolved["hpo_trials"] == 0
    assert resolved["learning_rate"] == pytest.approx(best["params"]["learning_rate"])
    classifier = pipeline("text-classification", model=str(out))
    assert classifier("A wonderful film.")[0]["label"] in {"positive", "negative"}


def test_killed_search_resumes_to_its_trial_count_without_repeating_trials(tiny_model, demo_data, tmp_path):
    out = tmp_path / "out"
    args = _search_args(tiny_model, demo_data, out, _space(tmp_path, num_train_epochs=[3]), "--hpo_trials", "3",
                        "--hpo_heartbeat_interval", "1")
    command = [sys.executable, str(ROOT / "recipes" / TASK / "run.py"), *map(str, args)]
    worker = subprocess.Popen(command, cwd=ROOT, env=OFFLINE_ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    for line in worker.stdout:  # kill it as soon as the first trial is stored: the second one is running
        if line.startswith("search: trial 0 "):
            break
    while not _finished(_study(out / "hpo.db")):
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    before = {t.number: (t.params, t.value) for t in _finished(_study(out / "hpo.db"))}
    assert 1 <= len(before) < 3
    assert not (out / "all_results.json").exists()

    time.sleep(3)  # past the grace period (2 heartbeats): the killed trial is stale
    run_recipe(TASK, *args)  # the same command again

    study = _study(out / "hpo.db")
    finished = _finished(study)
    assert len(finished) == 3  # the count was completed, not restarted
    for number, (params, value) in before.items():  # finished trials are kept as they were
        assert {t.number: (t.params, t.value) for t in finished}[number] == (params, value)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 3  # none was run twice
    assert (out / "all_results.json").exists()


def test_two_workers_on_one_storage_share_the_trials(tiny_model, demo_data, tmp_path):
    storage = tmp_path / "shared.db"
    space = _space(tmp_path)
    workers = []
    for name in ("a", "b"):
        args = _search_args(tiny_model, demo_data, tmp_path / name, space, "--hpo_trials", "4", "--hpo_pruner", "none",
                            "--hpo_storage", f"sqlite:///{storage}")
        command = [sys.executable, str(ROOT / "recipes" / TASK / "run.py"), *map(str, args)]
        workers.append(subprocess.Popen(command, cwd=ROOT, env=OFFLINE_ENV, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=900) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    trials = _study(storage).get_trials()
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 4 and len({t.number for t in trials}) == len(trials)
    # Workers finishing at the same moment may each start one more trial: it fails as surplus, untrained.
    assert all(t.user_attrs.get("surplus") for t in trials if t not in finished)
    assert sorted(t.number for t in finished) == sorted(t.number for t in trials)[:4]
    ran = [stdout.count("search: trial ") - stdout.count(" not trained: ") for stdout, _ in outputs]
    assert min(ran) >= 1  # both workers trained trials
    # The last worker to finish trains the best model.
    assert any((tmp_path / name / "all_results.json").exists() for name in ("a", "b"))


def test_lora_rank_search_reaches_the_model(tiny_model, demo_data, tmp_path):
    out = tmp_path / "out"
    space = _space(tmp_path, lora_r=[2, 16], learning_rate=3e-3)
    run_recipe(TASK, *_search_args(tiny_model, demo_data, out, space, "--lora", "--hpo_trials", "4", "--hpo_seed", "0",
                                   "--hpo_pruner", "none"))
    trials = _finished(_study(out / "hpo.db"))
    sizes = {t.params["lora_r"]: t.user_attrs["trainable_parameters"] for t in trials}
    assert set(sizes) == {2, 16} and sizes[16] > sizes[2]  # the rank of each trial's adapters
    best = read_json(out / "best_run.json")["params"]["lora_r"]
    assert read_json(out / "adapter" / "adapter_config.json")["r"] == best


def test_a_search_reaches_reinit_top_layers(tiny_model, demo_data, tmp_path):
    """reinit_top_layers is a model setting a space can hold (bench/configs/rte_reinit_space.yaml): the same
    trial with the top layer redrawn ends on another model."""
    losses = {}
    for count in (0, 1):
        out = tmp_path / f"reinit{count}"
        space = _space(tmp_path, learning_rate=1e-3, reinit_top_layers=count)
        run_recipe(TASK, *_search_args(tiny_model, demo_data, out, space, "--hpo_trials", "1", "--hpo_metric",
                                       "loss", "--hpo_train_best", "false", "--hpo_seed", "0"))
        losses[count] = _study(out / "hpo.db").best_value
    assert losses[0] != losses[1]


def test_search_under_accelerate_launch_trains_each_trial_on_every_rank(tiny_model, demo_data, tmp_path):
    """DDP refuses models whose parameter shapes differ between ranks: a LoRA rank search only completes if
    every rank builds the same trial."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    out = tmp_path / "out"
    space = _space(tmp_path, lora_r=[2, 16], learning_rate=3e-3)
    proc = run_recipe(TASK, *_search_args(tiny_model, demo_data, out, space, "--lora", "--hpo_trials", "2", "--hpo_seed", "0"),
                      launcher=[accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                                "--mixed_precision", "no", "--dynamo_backend", "no"])
    assert proc.stdout.count("search: trial ") == 2  # printed once per trial, by the main process
    assert len(_finished(_study(out / "hpo.db"))) == 2
    assert read_json(out / "all_results.json")["predict_samples"] == 150


@pytest.mark.parametrize("problem, flags, message", [
    ("unknown parameter", ["--hpo_trials", "2"], "did you mean 'learning_rate'"),
    ("no evaluation", ["--hpo_trials", "2", "--eval_strategy", "no"], "--hpo_trials needs"),
    ("lora key without lora", ["--hpo_trials", "2"], "add --lora"),
])
def test_bad_search_settings_stop_before_writing(tiny_model, demo_data, tmp_path, problem, flags, message):
    space = {"unknown parameter": {"learning_rat": [1e-4]}, "no evaluation": SPACE,
             "lora key without lora": {"lora_r": [4]}}[problem]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    out = tmp_path / "out"
    proc = run_recipe(TASK, *_search_args(tiny_model, demo_data, out, path, *flags), check=False)
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and message in error, proc.stderr[-1000:]
    assert not out.exists()


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_windowed_recipes_search_on_their_word_and_answer_metrics(tiny_model, demo_data, tmp_path, task):
    """NER and QA score windows merged back to sentences/questions: the search optimises those scores."""
    files = {"ner": ["ner/train.jsonl", "ner/validation.jsonl", "ner/test.jsonl"],
             "qa": ["qa/train.json", "qa/dev.json", "qa/test.jsonl"]}[task]
    out = tmp_path / "out"
    run_recipe(task, f"recipes/{task}/config.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
               "--train_file", demo_data / files[0], "--validation_file", demo_data / files[1], "--test_file", demo_data / files[2],
               "--max_train_samples", "100", "--hpo_trials", "2", "--hpo_space", _space(tmp_path, num_train_epochs=[1]),
               *FAST, "--save_strategy", "epoch")
    best = read_json(out / "best_run.json")
    assert best["metric"] == "eval_f1" and best["direction"] == "maximize"
    assert read_json(out / "all_results.json")["eval_f1"] >= 0


def test_a_diverging_trial_is_pruned_and_the_search_goes_on(tiny_model, demo_data, tmp_path):
    """The nan guard stops a plain run; in a search it prunes that trial, and the next one still runs."""
    out = tmp_path / "out"
    space = _space(tmp_path, learning_rate={"low": 1e29, "high": 1e30, "log": True}, num_train_epochs=[1])
    proc = run_recipe(TASK, *_search_args(tiny_model, demo_data, out, space, "--hpo_trials", "2", "--hpo_seed", "0"),
                      check=False)
    assert proc.stdout.count("pruned (loss became nan at step") == 2, proc.stdout[-2000:]
    assert proc.returncode == 2 and "no trial of study 'search' finished" in proc.stderr.strip().splitlines()[-1]
    states = [t.state for t in _study(out / "hpo.db").get_trials()]
    assert states == [optuna.trial.TrialState.PRUNED] * 2
    assert len((out / "trials.csv").read_text().strip().splitlines()) == 1 + 2
    assert not (out / "all_results.json").exists()


def test_a_search_without_an_evaluation_strategy_evaluates_every_epoch(tiny_model, demo_data, tmp_path):
    """The HF way, no config file: --hpo_trials alone works, and says how it evaluates."""
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--output_dir", out, "--do_train",
                      "--train_file", demo_data / "sentiment/train.csv", "--validation_file",
                      demo_data / "sentiment/validation.csv", "--max_train_samples", "128", "--report_to", "none",
                      "--hpo_trials", "2", "--hpo_space", _space(tmp_path), "--hpo_seed", "0")
    assert "each trial evaluates every epoch" in proc.stderr
    for trial in _finished(_study(out / "hpo.db")):
        assert len(trial.intermediate_values) == 2  # num_train_epochs [2]: one evaluation per epoch
    assert read_json(out / "all_results.json")["hpo_trials"] == 2


def test_growing_a_finished_search_retrains_only_a_new_best(tiny_model, demo_data, tmp_path):
    """The study is the record of a search: a larger --hpo_trials continues it, no --overwrite_output_dir."""
    out = tmp_path / "out"
    args = _search_args(tiny_model, demo_data, out, _space(tmp_path), "--hpo_pruner", "none", "--hpo_seed", "3")
    run_recipe(TASK, *args, "--hpo_trials", "2")
    first = read_json(out / "all_results.json")["hpo_best_trial"]

    grown = run_recipe(TASK, *args, "--hpo_trials", "4")
    study = _study(out / "hpo.db")
    assert len(_finished(study)) == 4 and grown.stdout.count("search: trial ") == 2  # only the new ones ran
    # A seeded sampler starts again in each process; offset by the study's trials, it does not repeat them.
    assert len({t.params["learning_rate"] for t in _finished(study)}) == 4
    best = study.best_trial.number
    if best == first:
        assert f"search: best trial {best} unchanged; the model in {out} is kept" in grown.stdout
    else:
        assert f"was trial {first}); training it again" in grown.stdout
    assert read_json(out / "all_results.json")["hpo_best_trial"] == best == read_json(out / "best_run.json")["trial"]

    before = (out / "all_results.json").stat().st_mtime_ns
    again = run_recipe(TASK, *args, "--hpo_trials", "4")  # nothing left to search: the model stays
    assert "search: trial " not in again.stdout and "unchanged" in again.stdout
    assert (out / "all_results.json").stat().st_mtime_ns == before

    # A worker started on the finished study with another output_dir (a late job of an array) finds the
    # best claimed by this one in the study and trains no copy.
    late = tmp_path / "late"
    shared = ["--hpo_storage", f"sqlite:///{out / 'hpo.db'}", "--hpo_trials", "4"]
    joined = run_recipe(TASK, *_search_args(tiny_model, demo_data, late, _space(tmp_path), "--hpo_pruner", "none",
                                            "--hpo_seed", "3", *shared))
    assert f"search: best trial {best} " in joined.stdout and f"trains it into {out}" in joined.stdout
    assert not (late / "all_results.json").exists() and (late / "best_run.json").exists()


def test_a_search_that_only_chooses_settings_trains_no_best(tiny_model, demo_data, tmp_path):
    """--hpo_train_best false, on a split of train (bench/choose.py): best_run.json holds the choice; no model."""
    out = tmp_path / "out"
    proc = run_recipe(TASK, *_search_args(tiny_model, demo_data, out, _space(tmp_path), "--hpo_trials", "2",
                                          "--hpo_train_best", "false", "--validation_file", "",
                                          "--validation_split_percentage", "20", "--do_predict", "false"))
    best = read_json(out / "best_run.json")
    assert f"search: best trial {best['trial']} " in proc.stdout and "not trained" in proc.stdout
    assert not (out / "all_results.json").exists() and not (out / "model.safetensors").exists()
    assert _study(out / "hpo.db").best_trial.number == best["trial"]


def test_a_trial_of_several_seeds_scores_their_mean(tiny_model, demo_data, tmp_path):
    """--hpo_runs_per_trial 2: each trial trains with two seeds and its value is their mean; the pruner saw
    the first run's evaluations only; a study of such trials cannot be resumed with another count."""
    out = tmp_path / "out"
    args = _search_args(tiny_model, demo_data, out, _space(tmp_path), "--hpo_trials", "2", "--hpo_metric", "loss",
                        "--hpo_train_best", "false", "--hpo_seed", "0")
    proc = run_recipe(TASK, *args, "--hpo_runs_per_trial", "2")
    assert proc.stdout.count(" over 2 seeds | ") == 2
    for trial in _finished(_study(out / "hpo.db")):
        first, second = trial.user_attrs["run_values"]
        assert first != second  # another seed, another model (eval_loss: no ties between small accuracies)
        assert trial.value == pytest.approx((first + second) / 2)
        assert len(trial.intermediate_values) == 2 and min(trial.intermediate_values.values()) == first
    best = read_json(out / "best_run.json")
    assert best["runs_per_trial"] == 2 and len(best["run_values"]) == 2
    assert not list(out.glob("run-*"))

    other = run_recipe(TASK, *args, "--hpo_trials", "3", check=False)  # one run per trial: not comparable
    assert other.returncode == 2
    error = other.stderr.strip().splitlines()[-1]
    assert error.startswith("error: --hpo_runs_per_trial 1: study 'search' was searched with --hpo_runs_per_trial 2"), error
    assert len(_study(out / "hpo.db").get_trials()) == 2


def test_a_trial_scored_by_folds_trains_the_best_on_all_of_train(tiny_model, demo_data, tmp_path):
    """--hpo_folds 3: each trial trains three times, each time scored on the fold it did not train on, and its
    value is their mean; the validation file is left to the best settings' run, which trains on all of train;
    a study of such trials cannot be resumed with another count of folds."""
    out = tmp_path / "out"
    args = _search_args(tiny_model, demo_data, out, _space(tmp_path), "--hpo_trials", "2", "--hpo_metric", "loss",
                        "--hpo_seed", "0", "--max_train_samples", "96")
    proc = run_recipe(TASK, *args, "--hpo_folds", "3")
    assert proc.stdout.count(" over 3 folds | ") == 2
    for trial in _finished(_study(out / "hpo.db")):
        values = trial.user_attrs["run_values"]
        assert len(set(values)) == 3 and trial.value == pytest.approx(sum(values) / 3)
    best = read_json(out / "best_run.json")
    assert best["folds"] == 3 and len(best["run_values"]) == 3
    results = read_json(out / "all_results.json")
    assert results["train_samples"] == 96 and "eval_accuracy" in results  # all of train; the validation file
    assert not [key for key in results if "fold" in key]
    assert not yaml.safe_load((out / "run_config.yaml").read_text()).get("load_best_model_at_end")  # to the end
    assert not list(out.glob("run-*"))

    other = run_recipe(TASK, *args, "--hpo_trials", "3", "--hpo_folds", "2", check=False)
    assert other.returncode == 2
    error = other.stderr.strip().splitlines()[-1]
    assert error.startswith("error: --hpo_folds 2: study 'search' was searched with --hpo_folds 3"), error


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_windowed_recipes_search_on_folds_without_an_evaluation_set(tiny_model, demo_data, tmp_path, task):
    """NER and QA score a fold's windows merged back to its sentences/questions (looked up by split name); with
    no evaluation data the best settings train to the end and save a model."""
    train = {"ner": "ner/train.jsonl", "qa": "qa/train.json"}[task]
    out = tmp_path / "out"
    proc = run_recipe(task, f"recipes/{task}/config.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
                      "--train_file", demo_data / train, "--validation_file", "", "--test_file", "", "--do_eval", "false",
                      "--do_predict", "false", "--max_train_samples", "60", "--hpo_trials", "1", "--hpo_folds", "2",
                      "--hpo_space", _space(tmp_path, num_train_epochs=[1]), *FAST)
    assert proc.stdout.count(" over 2 folds | ") == 1
    best = read_json(out / "best_run.json")
    assert best["metric"] == "eval_f1" and len(best["run_values"]) == 2
    assert (out / "model.safetensors").exists() and read_json(out / "all_results.json")["train_samples"] > 0


@pytest.mark.parametrize("flags, message", [
    (["--hpo_trials", "2", "--hpo_folds", "1"], "--hpo_folds 1: give 2 or more folds"),
    (["--hpo_folds", "3"], "--hpo_folds 3 scores a search's trials: give --hpo_trials too"),
    (["--hpo_trials", "2", "--hpo_folds", "3", "--hpo_runs_per_trial", "2"], "drop --hpo_runs_per_trial"),
    (["--hpo_trials", "2", "--hpo_folds", "3", "--validation_split_percentage", "20"],
     "drop --validation_split_percentage"),
    (["--hpo_trials", "2", "--hpo_folds", "3", "--augment", "delete"], "--hpo_folds 3 with --augment"),
    (["--hpo_trials", "2", "--hpo_folds", "3", "--early_stopping_patience", "2"], "drop --early_stopping_patience"),
])
def test_bad_fold_settings_stop_before_the_data_is_read(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        args.parse(argv=["--train_file", str(tmp_path / "never_read.csv"), "--do_train", "--output_dir",
                         str(tmp_path / "out"), *flags])
    assert not (tmp_path / "out").exists()


def test_folds_cover_train_once_and_keep_each_passage_in_one_fold(demo_data, tmp_path):
    """QA folds hold whole passages (--validation_split_by context, the recipe's default), like its hold-out."""
    cfg = args.parse(argv=["--train_file", str(demo_data / "qa/train.json"), "--do_train", "--output_dir",
                           str(tmp_path / "out"), "--hpo_trials", "2", "--hpo_folds", "3"])
    raw = data.load(cfg, held_out_by="context")
    folds = [raw.splits[name] for name in data.fold_names(raw.splits)]
    assert len(folds) == 3 and data.eval_names(raw.splits) == []
    assert sorted(i for fold in folds for i in fold["id"]) == sorted(raw.splits["train"]["id"])
    contexts = [set(fold["context"]) for fold in folds]
    assert all(not (a & b) for i, a in enumerate(contexts) for b in contexts[i + 1:])
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= max(collections.Counter(raw.splits["train"]["context"]).values())


def test_a_fold_run_trains_on_the_other_folds_and_is_scored_on_its_own(tiny_model, tmp_path):
    cfg = args.parse(argv=["--model_name_or_path", tiny_model, "--output_dir", str(tmp_path), "--do_train",
                           "--report_to", "none", "--hpo_trials", "1", "--hpo_folds", "3"])
    rows = lambda first, n: datasets.Dataset.from_dict(  # noqa: E731
        {"input_ids": [[101, first + i, 102] for i in range(n)], "labels": [i % 2 for i in range(n)]})
    encoded = datasets.DatasetDict({"train": rows(1000, 9), "validation": rows(2000, 4), "fold_0": rows(1000, 3),
                                    "fold_1": rows(1003, 3), "fold_2": rows(1006, 3)})
    config = modeling.load_config(cfg.model, num_labels=2)
    trainers = training.TrainerFactory(
        lambda model_args: modeling.load_model(model_args, AutoModelForSequenceClassification, config, "SEQ_CLS"),
        modeling.load_tokenizer(cfg.model), encoded, None, None, ("accuracy", True))
    trainer = trainers.build(cfg, fold=1)
    ids = {name: list(ds["input_ids"]) for name, ds in encoded.items()}
    assert list(trainer.eval_dataset["input_ids"]) == ids["fold_1"] and trainer.eval_split == "fold_1"
    assert sorted(trainer.train_dataset["input_ids"]) == sorted(ids["fold_0"] + ids["fold_2"])
    plain = trainers.build(cfg)  # the best settings' run: all of train, the evaluation set
    assert len(plain.train_dataset) == 9 and plain.eval_split == "validation"
