"""Shared fixtures: real recipes run as a user runs them (a subprocess, offline), on data the tests write."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

OFFLINE_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": ""}


def run_recipe(task, *args, check=True, launcher=None):
    """`python recipes/<task>/run.py ARGS` (or under `launcher`, e.g. accelerate launch); returns the process."""
    command = [*(launcher or [sys.executable]), str(ROOT / "recipes" / task / "run.py"), *map(str, args)]
    proc = subprocess.run(command, cwd=ROOT, env=OFFLINE_ENV, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{task} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path, rows):
    with open(path, "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer, 32-wide BERT with random weights and the real all-MiniLM-L6-v2 tokenizer: fast to train."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from common.modeling import default_model_path
    path = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    from common.tools import demo_data
    return Path(demo_data.write(str(tmp_path_factory.mktemp("demo"))))


FAST = ["--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64", "--report_to", "none",
        "--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "50"]


def assert_valid_png(path, min_side=100):
    """A plot a person can open: PNG signature, decodes, not a blank sliver."""
    from matplotlib.image import imread
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pixels = imread(path)
    assert min(pixels.shape[:2]) >= min_side and pixels.std() > 0, f"{path}: {pixels.shape}, blank?"


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server: the one .ci/run started (HPO_POSTGRES_URL), else a throwaway one started here
    with the same script. Skips only where none can be started, and never under CI."""
    if os.environ.get("HPO_POSTGRES_URL"):
        yield os.environ["HPO_POSTGRES_URL"]
        return
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "start"], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests, but no server could be started: {reason}")
        pytest.skip(f"no PostgreSQL server could be started ({reason}); apt-get install postgresql")
    settings = dict(item.split("=", 1) for item in proc.stdout.split()[1:])
    try:
        yield settings["HPO_POSTGRES_URL"]
    finally:
        subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "stop", settings["HPO_POSTGRES_DIR"]])
