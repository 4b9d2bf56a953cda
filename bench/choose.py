"""Choose a bench config's training settings with the project's own search, on the training data only.

    python bench/choose.py rte --trials 16         # bench/configs/rte.yaml over bench/configs/rte_space.yaml
    python bench/choose.py rte --trials 8 --try_first rte_hf_defaults   # HF's settings are the next trial
    python bench/choose.py rte --trials 8 --runs_per_trial 3 --try_first rte_hf_defaults rte

--try_first NAME [NAME ...] queues bench/configs/NAME.yaml's values of the space's keys as the study's next
trials (once each), so the search scores the baseline's settings on the same held-out rows as its own; a
NAME of the form KEY=VALUE[,KEY=VALUE] queues those values instead. --space NAME searches
bench/configs/NAME_space.yaml (default: the config's own) in a study of its own:

    python bench/choose.py rte --space rte_reinit --trials 2 --runs_per_trial 3 \
        --try_first reinit_top_layers=2 reinit_top_layers=0      # a technique, on the held-out rows

A recipe flag after the options applies to every trial; one that changes the data (not a space key) needs a
study of its own: a --space of its own, or a name given with --study (its log and copies take that name):

    python bench/choose.py conll2003 --study conll2003_sentences --trials 1 --try_first conll2003
    python bench/choose.py conll2003 --space conll2003_context --trials 1 --document_context \
        --try_first learning_rate=1.88e-4,per_device_train_batch_size=8,num_train_epochs=5

--runs_per_trial K trains each trial with K seeds and scores their mean (the recipe's --hpo_runs_per_trial):
on RTE a seed moves the score as much as the settings do. Its study is bench/out/choose_<name>_<K>seeds.

The config's training file is split (--validation_split_percentage, default 20): trials train on the rest
and are scored on the held-out part, never on the dev or test sets bench/quality.py reports. SQuAD holds out
whole passages (the QA recipe's --validation_split_by context): no trial is scored on a passage it trained on. The study is
resumable (bench/out/choose_<name>/hpo.db: the same command continues it, a larger --trials grows it).
Each trial's line goes to bench/search/<name>.log; trials.csv and best_run.json are copied to
bench/search/<name>[_<K>seeds|_<K>folds]_trials.csv and _best_run.json, which hold the chosen settings.

--folds K scores each trial by K-fold cross-validation of the whole training file instead of one held-out
part (the recipe's --hpo_folds; SQuAD's folds keep passages whole): every training row is scored once, by a
model that did not train on it. Its study is bench/out/choose_<name>_<K>folds.

    python bench/choose.py rte --folds 5 --trials 2 --try_first rte_hf_defaults rte
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from quality import TASKS  # noqa: E402  (the bench configs' recipes, kept in one table)

RECIPES = {name: recipe for name, (recipe, _) in TASKS.items()}


def scalar(text):
    """A command line's value as YAML reads it, but '1e-4' as the number it means (YAML 1.1 wants '1.0e-4')."""
    value = yaml.safe_load(text)
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def enqueue(name, space_file, storage):
    """Queue the named config's values of the space's keys (or NAME's KEY=VALUE pairs) as a trial, unless the
    study has tried them."""
    space = yaml.safe_load((ROOT / space_file).read_text())
    if "=" in name:
        params = {key: scalar(value) for key, value in (pair.split("=", 1) for pair in name.split(","))}
        if set(params) - set(space):
            sys.exit(f"choose: --try_first {name}: {sorted(set(params) - set(space))} not in {space_file}")
    else:
        config = yaml.safe_load((ROOT / f"bench/configs/{name}.yaml").read_text())
        params = {key: config[key] for key in space}
    (ROOT / storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=storage, study_name="search", load_if_exists=True, direction="maximize")
    tried = [trial.params or trial.system_attrs.get("fixed_params") for trial in study.get_trials(deepcopy=False)]
    if params in tried:  # a queued trial has no params yet, only fixed_params
        print(f"choose: the study already has a trial with {name}'s settings {params}")
        return
    study.enqueue_trial(params)
    print(f"choose: queued {name}'s settings {params}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--held_out", type=int, default=20, help="%% of the training file scored by the trials")
    parser.add_argument("--runs_per_trial", type=int, default=1, help="seeds per trial; the trial scores their mean")
    parser.add_argument("--folds", type=int, default=0, help="score each trial on K folds of train (0: one held-out part)")
    parser.add_argument("--try_first", metavar="NAME", nargs="+", default=[],
                        help="queue bench/configs/NAME.yaml's settings (or KEY=VALUE,...) as trials")
    parser.add_argument("--space", metavar="NAME", help="search bench/configs/NAME_space.yaml (default: NAME's)")
    parser.add_argument("--study", metavar="NAME", help="name the study (default: the space's, with the seeds or "
                        "folds); a recipe flag that changes the data (not a space's key) needs a study of its own")
    known, overrides = parser.parse_known_args()
    space = known.space or known.name
    study = known.study or space + (f"_{known.runs_per_trial}seeds" if known.runs_per_trial > 1 else "") + (
        f"_{known.folds}folds" if known.folds else "")
    held_out = (["--hpo_folds", str(known.folds), "--do_eval", "false"] if known.folds
                else ["--validation_split_percentage", str(known.held_out)])
    out = f"bench/out/choose_{study}"  # relative to the repository root, where the recipe runs
    for name in known.try_first:
        enqueue(name, f"bench/configs/{space}_space.yaml", f"sqlite:///{ROOT / out}/hpo.db")
    command = [sys.executable, f"recipes/{RECIPES[known.name]}/run.py", f"bench/configs/{known.name}.yaml",
               "--validation_file", "", "--do_predict", "false",
               *held_out,
               "--hpo_trials", str(known.trials), "--hpo_space", f"bench/configs/{space}_space.yaml",
               "--hpo_storage", f"sqlite:///{out}/hpo.db", "--hpo_seed", "0", "--hpo_train_best", "false",
               "--hpo_runs_per_trial", str(known.runs_per_trial),
               "--eval_strategy", "epoch", "--output_dir", out, *overrides]
    log = ROOT / f"bench/search/{known.study or space}.log"
    log.parent.mkdir(exist_ok=True)
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}) as proc, log.open("a") as fh:
        fh.write(f"$ {' '.join(['python', *command[1:]])}\n")
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("search:"):
                fh.write(line)
                fh.flush()
    if proc.returncode:
        sys.exit(proc.returncode)
    for name in ("trials.csv", "best_run.json"):
        shutil.copy(ROOT / out / name, ROOT / f"bench/search/{study}_{name}")
