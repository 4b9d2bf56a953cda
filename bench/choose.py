"""Choose a bench config's training settings with the project's own search, on the training data only.

    python bench/choose.py rte --trials 16         # bench/configs/rte.yaml over bench/configs/rte_space.yaml

The config's training file is split (--validation_split_percentage, default 20): trials train on the rest
and are scored on the held-out part, never on the dev or test sets bench/quality.py reports. The study is
resumable (bench/out/choose_<name>/hpo.db: the same command continues it, a larger --trials grows it).
Each trial's line goes to bench/search/<name>.log; trials.csv and best_run.json are copied to
bench/search/<name>_trials.csv and <name>_best_run.json, which hold the chosen settings.
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"sst2": "text_classification", "rte": "nli", "conll2003": "ner", "squad": "qa"}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--held_out", type=int, default=20, help="%% of the training file scored by the trials")
    known, overrides = parser.parse_known_args()
    out = f"bench/out/choose_{known.name}"  # relative to the repository root, where the recipe runs
    command = [sys.executable, f"recipes/{RECIPES[known.name]}/run.py", f"bench/configs/{known.name}.yaml",
               "--validation_file", "", "--do_predict", "false",
               "--validation_split_percentage", str(known.held_out),
               "--hpo_trials", str(known.trials), "--hpo_space", f"bench/configs/{known.name}_space.yaml",
               "--hpo_storage", f"sqlite:///{out}/hpo.db", "--hpo_seed", "0", "--hpo_train_best", "false",
               "--eval_strategy", "epoch", "--output_dir", out, *overrides]
    log = ROOT / f"bench/search/{known.name}.log"
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
        shutil.copy(ROOT / out / name, ROOT / f"bench/search/{known.name}_{name}")
