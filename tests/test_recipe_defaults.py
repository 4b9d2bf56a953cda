"""A recipe's tuned settings hold with or without its config file: an HF-style bare command line trains as
the example config does (the settings README's numbers came from), and every explicit setting still wins."""
import importlib.util

import pytest
import yaml

from common import args
from conftest import FAST, ROOT, read_json, run_recipe

RECIPES = ["text_classification", "nli", "ner", "qa", "time_series_classification"]


def load_script(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recipe_module(recipe):
    return load_script(ROOT / "recipes" / recipe / "run.py", f"{recipe}_defaults")


def parse(recipe, argv):
    module = recipe_module(recipe)
    data_class = next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, args.DataArguments)
                      and v.__module__ == module.__name__)
    return args.parse(data_class, argv, defaults=module.DEFAULTS,
                      lora_learning_rate=getattr(module, "LORA_LEARNING_RATE", args.LORA_LEARNING_RATE))


def setting(cfg, name):
    return next(getattr(part, name) for part in cfg if hasattr(part, name))


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_bare_command_line_gets_the_recipes_tuned_settings(recipe, tmp_path):
    defaults = {**args.TRAINING_DEFAULTS, **recipe_module(recipe).DEFAULTS}
    bare = parse(recipe, ["--output_dir", str(tmp_path / "out")])
    for name, value in defaults.items():
        got = setting(bare, name)
        assert (got.value if hasattr(got, "value") else got) == value, name
    assert "learning_rate" not in bare.run.given  # defaults are not the user's choices (--lora's rate keys on it)


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_example_config_and_the_defaults_agree(recipe):
    """The config a user copies shows the tuned settings; it must not drift from the code's."""
    config = yaml.safe_load((ROOT / "recipes" / recipe / "config.yaml").read_text())
    defaults = {**args.TRAINING_DEFAULTS, **recipe_module(recipe).DEFAULTS}
    assert {k: config[k] for k in defaults if k in config} == {k: defaults[k] for k in defaults if k in config}


def test_explicit_settings_win_and_lora_keeps_its_own_rate(tmp_path):
    given = parse("nli", ["--output_dir", str(tmp_path / "a"), "--learning_rate", "2e-5",
                          "--train_sampling_strategy", "random", "--warmup_steps", "0"])
    assert (given.training.learning_rate, given.training.warmup_steps) == (2e-5, 0)
    assert given.training.train_sampling_strategy == "random"
    for recipe, rate in (("nli", args.LORA_LEARNING_RATE), ("ner", 2e-3), ("qa", 2e-3)):  # studies/lora.py
        lora = parse(recipe, ["--output_dir", str(tmp_path / recipe), "--lora"])
        assert lora.training.learning_rate == rate


def test_a_run_without_config_trains_with_the_recipes_settings(tiny_model, demo_data, tmp_path):
    out = tmp_path / "out"
    run_recipe("ner", "--model_name_or_path", tiny_model, "--train_file", demo_data / "ner/train.jsonl",
               "--do_train", "--max_train_samples", "64", "--num_train_epochs", "1", "--output_dir", out, *FAST)
    resolved = yaml.safe_load((out / "run_config.yaml").read_text())  # what differs from TrainingArguments'
    assert resolved["learning_rate"] == recipe_module("ner").DEFAULTS["learning_rate"] != 5e-5
    assert all(resolved[k] == v for k, v in args.TRAINING_DEFAULTS.items())
    assert resolved["train_sampling_strategy"] == "group_by_length"
    assert resolved["num_train_epochs"] == 1 and resolved["per_device_train_batch_size"] == 16  # given: they win
    assert read_json(out / "train_results.json")["epoch"] == 1


def bench_recipe(config_name):
    """The recipe bench/quality.py runs a bench config with (its RUNS table)."""
    return load_script(ROOT / "bench" / "quality.py", "bench_quality").RUNS[config_name][0]


@pytest.mark.parametrize("config", sorted((ROOT / "bench/configs").glob("*_defaults.yaml")), ids=lambda p: p.stem)
def test_a_baseline_config_sets_every_setting_the_recipe_tunes(config):
    """bench/configs/*_defaults.yaml are HF's example defaults run through a recipe: a setting one leaves out
    takes the recipe's tuned value (warm-up 0.1, weight decay 0.01), not HF's, and the baseline is not HF's."""
    tuned = {**args.TRAINING_DEFAULTS, **recipe_module(bench_recipe(config.stem)).DEFAULTS}
    assert set(tuned) - set(yaml.safe_load(config.read_text())) == set()


@pytest.mark.parametrize("recipe", ["text_classification", "nli", "ner", "qa"])
def test_the_example_config_with_lora_trains_at_the_lora_rate(recipe, tmp_path):
    """The config a user copies leaves the rate to the recipe, so `config.yaml --lora` is LoRA at its defaults."""
    config = str(ROOT / "recipes" / recipe / "config.yaml")
    module = recipe_module(recipe)
    full = parse(recipe, [config, "--output_dir", str(tmp_path / "full")]).training.learning_rate
    lora = parse(recipe, [config, "--output_dir", str(tmp_path / "lora"), "--lora"]).training.learning_rate
    assert full == module.DEFAULTS["learning_rate"]
    assert lora == getattr(module, "LORA_LEARNING_RATE", args.LORA_LEARNING_RATE) > full


def test_every_bench_config_parses_with_its_recipe_and_a_first_stage_feeds_the_second(tmp_path):
    """bench/quality.py's configs (first stages too) hold only flags their recipe knows, and a two-stage run's
    second stage starts from the model its first stage writes."""
    quality = load_script(ROOT / "bench" / "quality.py", "bench_quality")
    firsts = {first: name for name, (first, _) in quality.FIRST_STAGES.items()}
    for name in [*quality.RUNS, *firsts]:
        recipe = quality.RUNS[firsts.get(name, name)][0]
        cfg = parse(recipe, [str(ROOT / f"bench/configs/{name}.yaml"), "--output_dir", str(tmp_path / name)])
        assert cfg.training.seed == 42, name
    for first, second in firsts.items():
        written = yaml.safe_load((ROOT / f"bench/configs/{first}.yaml").read_text())["output_dir"]
        assert yaml.safe_load((ROOT / f"bench/configs/{second}.yaml").read_text())["model_name_or_path"] == written
