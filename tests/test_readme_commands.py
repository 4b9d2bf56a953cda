"""The READMEs' walk-throughs run: documentation that cannot drift from the code.

Convention, in any recipe's README.md: an HTML comment right before a fenced block marks it for this test.

    <!-- test: run -->          a bash block (commands) or a python block, run in the walk-through's order
    <!-- test: write PATH -->   the block is a file the reader creates: written to PATH
    <!-- test: edit PATH -->    a YAML block of keys the reader changes in PATH (a config): set there

A README's marked blocks run as one bash script (so `cd` carries over) in a temporary folder holding a
copy of the repository's recipes/ and common/, i.e. from "the repository root" outside the repository.
Fast mode: every command line that runs a `run.py` gets FAST appended (flags after the config win): a
tiny model and two training steps. Not run here: the top README's install/`run_all.sh`/pytest block
(pip needs a network; run_all.sh trains every recipe in full; the copy test runs each example config),
and unmarked blocks (Hub datasets, accelerate launch, benchmarks on ../shared/data).
"""
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.tools import copy_recipe
from conftest import OFFLINE_ENV, ROOT

MARKED = re.compile(r"<!-- test: (run|write|edit)(?: (\S+))? -->\s*\n```(\w*)\n(.*?)\n```", re.S)
EDIT_YAML = ("python -c 'import sys, yaml; p = sys.argv[1]; c = yaml.safe_load(open(p)); "
             "c.update(yaml.safe_load(sys.stdin)); yaml.safe_dump(c, open(p, \"w\"), sort_keys=False)'")


def fast_flags(recipe, tiny_model):
    """The text recipes train the tiny BERT; the time-series recipe a small PatchTST of its own."""
    model = ("--pretrain_epochs 1 --d_model 16 --num_hidden_layers 1" if recipe == "time_series_classification"
             else f"--model_name_or_path {tiny_model}")
    return f"{model} --max_steps 2 --per_device_eval_batch_size 16 --disable_tqdm true"


def script_of(readme_text, fast):
    """The marked blocks of a README as one bash script, in fast mode."""
    steps = ["set -euo pipefail"]
    for kind, path, language, body in MARKED.findall(readme_text):
        if kind == "write":
            steps.append(f"mkdir -p \"$(dirname {path})\"\ncat > {path} <<'README_BLOCK'\n{body}\nREADME_BLOCK")
        elif kind == "edit":
            steps.append(f"{EDIT_YAML} {path} <<'README_BLOCK'\n{body}\nREADME_BLOCK")
        elif language == "python":
            steps.append(f"python - <<'README_BLOCK'\n{body}\nREADME_BLOCK")
        else:
            for line in body.replace("\\\n", " ").splitlines():  # continuation lines joined
                if re.search(r"\brun\.py\b", line):
                    line = re.sub(r"\s+#.*$", "", line) + " " + fast
                steps.append(line)
    return "\n".join(steps) + "\n"


@pytest.mark.parametrize("recipe", copy_recipe.recipes())
def test_readme_walk_through_runs(recipe, tiny_model, tmp_path):
    text = (ROOT / "recipes" / recipe / "README.md").read_text()
    blocks = MARKED.findall(text)
    assert any(kind == "run" and "run.py" in body for kind, _, _, body in blocks), "no tested walk-through"
    assert any(kind == "run" and language == "python" for kind, _, language, _ in blocks), "no tested loading step"
    workspace = tmp_path / "clone"
    for folder in ("common", "recipes"):
        shutil.copytree(ROOT / folder, workspace / folder, ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    script = script_of(text, fast_flags(recipe, tiny_model))
    env = {**OFFLINE_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # `python`: ours
    done = subprocess.run(["bash", "-c", script], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"script:\n{script}\nstderr:\n{done.stderr[-3000:]}"
    assert list(workspace.glob("**/all_results.json")), "the walk-through finished a run"


def test_script_appends_fast_flags_to_run_lines_only():
    text = ("<!-- test: run -->\n```bash\ncd x\npython run.py config.yaml \\\n    --lr 1  # note\n```\n"
            "<!-- test: edit x/config.yaml -->\n```yaml\na: 1\n```\n")
    script = script_of(text, "--max_steps 2")
    assert "cd x\npython run.py config.yaml      --lr 1 --max_steps 2\n" in script and "yaml.safe_dump" in script
