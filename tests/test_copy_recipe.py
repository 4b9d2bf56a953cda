"""Copy-and-adapt: each recipe copied out of the repository runs end to end from its new folder on its
demo data, and writes its plots, model card (and TensorBoard logs when asked) there."""
import glob
import subprocess
import sys

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common.tools import copy_recipe
from conftest import OFFLINE_ENV, ROOT, assert_valid_png, read_json

# Fast mode on the copied example config (its demo data is generated inside the copy). A new recipe
# needs an entry here: its extra overrides and the task plot its prediction writer draws.
# --report_to tensorboard on one recipe: its events file is checked too.
# TINY stands for the tiny BERT; the time-series recipe builds its own small PatchTST instead.
TINY = "<tiny model>"
RECIPES = {
    "text_classification": (["--model_name_or_path", TINY, "--report_to", "tensorboard"], "confusion_matrix.png",
                            "text-classification"),
    "nli": (["--model_name_or_path", TINY], "confusion_matrix.png", "text-classification"),
    "ner": (["--model_name_or_path", TINY], "entity_scores.png", "token-classification"),
    "qa": (["--model_name_or_path", TINY, "--max_seq_length", "128", "--doc_stride", "32"],
           "scores_by_answer_length.png", "question-answering"),
    "time_series_classification": (["--pretrain_epochs", "1", "--d_model", "16", "--num_hidden_layers", "1"],
                                   "examples.png", None),
}
FAST_RUN = ["--max_steps", "2", "--max_train_samples", "16", "--max_eval_samples", "16", "--max_predict_samples", "16",
            "--per_device_eval_batch_size", "16", "--disable_tqdm", "true", "--logging_steps", "1",
            "--report_to", "none"]


def test_every_recipe_has_fast_overrides():
    assert sorted(RECIPES) == copy_recipe.recipes()


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_copied_recipe_runs_from_its_own_folder(recipe, tiny_model, tmp_path_factory):
    dest = tmp_path_factory.mktemp("elsewhere") / f"my_{recipe}"
    assert not any((p / "common").exists() for p in dest.parents), "the copy must not find the repo's common/"
    copied = subprocess.run([sys.executable, "-m", "common.tools.copy_recipe", recipe, str(dest)], cwd=ROOT,
                            env=OFFLINE_ENV, capture_output=True, text=True, check=True)
    assert all(step in copied.stdout for step in ("1. config.yaml", "2. labels", "3. the task-specific"))
    recipe_files = {p.name for p in (ROOT / "recipes" / recipe).glob("*.*") if p.suffix in (".py", ".yaml", ".md")}
    assert {p.name for p in dest.iterdir()} == recipe_files | {"common", "requirements.txt"}

    # As a user would, from inside the copy: no install, no PYTHONPATH, no repository around it.
    extra, task_plot, pipeline_tag = RECIPES[recipe]
    subprocess.run([sys.executable, "-m", "common.tools.demo_data", "demo_data"], cwd=dest, env=OFFLINE_ENV, check=True,
                   capture_output=True)
    extra = [tiny_model if flag == TINY else flag for flag in extra]
    run = subprocess.run([sys.executable, "run.py", "config.yaml", *FAST_RUN, *extra], cwd=dest, env=OFFLINE_ENV,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = next(dest.glob("outputs/*/all_results.json")).parent  # the config's output_dir, relative to the copy
    results = read_json(out / "all_results.json")
    first_eval_set = "dev_matched" if recipe == "nli" else "validation"  # NLI's config has two dev files
    plots = ["learning_curve.png", task_plot]
    plots += [f"{first_eval_set}_{task_plot}"] if any(k.startswith("eval_") for k in results) else []
    for plot in plots:
        assert_valid_png(out / plot)
    card = (out / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---\n")[1])
    assert metadata["library_name"] == "transformers" and metadata.get("pipeline_tag") == pipeline_tag
    assert f"my_{recipe}" in metadata["tags"] and metadata["metrics"]  # the copy's folder names the recipe
    assert all(f"| `{name}` |" in card for name in results), "the model card lists every result of all_results.json"
    assert f"python run.py config.yaml {FAST_RUN[0]}" in card  # the exact command
    assert (out / "run_config.yaml").read_text().strip() in card and "![learning_curve](learning_curve.png)" in card
    if "tensorboard" in extra:
        events = glob.glob(str(out / "runs" / "*" / "events.out.tfevents.*"))
        assert events, "--report_to tensorboard writes under output_dir/runs/"
        logged = EventAccumulator(events[0]).Reload().Tags()["scalars"]
        assert "train/loss" in logged and "eval/loss" in logged


def test_copy_refuses_a_folder_with_files_and_unknown_recipes(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for argv, message in ((["ner", str(tmp_path / "taken")], "already exists and is not empty"),
                          (["nerd", str(tmp_path / "new")], "choose one of: ner, nli, qa, text_classification")):
        with pytest.raises(SystemExit) as exit_info:
            copy_recipe.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine" and not (tmp_path / "new").exists()
