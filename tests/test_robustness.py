"""Crashes and bad runs: a run killed with SIGKILL resumes to the same result, a diverging loss stops the run,
a finished run is never overwritten, and saved models hold no pickle."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import OFFLINE_ENV, ROOT, read_json, run_recipe

TASK = "text_classification"
STEPS, SAVE_EVERY = 12, 4


def _args(tiny_model, demo_data, out, *extra):
    data = demo_data / "sentiment"
    return ["--model_name_or_path", tiny_model, "--train_file", data / "train.csv", "--validation_file",
            data / "validation.csv", "--do_train", "--do_eval", "--max_steps", STEPS, "--save_strategy", "steps",
            "--save_steps", SAVE_EVERY, "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 64,
            "--max_seq_length", 32, "--max_eval_samples", 64, "--learning_rate", 1e-3, "--dropout", 0.1,
            "--seed", 7, "--report_to", "none", "--disable_tqdm", "true", "--output_dir", out, *extra]


def _eval_metrics(out):
    return {k: v for k, v in read_json(out / "all_results.json").items()
            if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))}


def test_run_killed_after_a_checkpoint_resumes_to_the_same_metrics(tiny_model, demo_data, tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"

    def start(out, *extra):
        command = [sys.executable, str(ROOT / "recipes" / TASK / "run.py"),
                   *map(str, _args(tiny_model, demo_data, out, *extra))]
        return subprocess.Popen(command, cwd=ROOT, env=OFFLINE_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    # Side by side, to save time. The reference saves no checkpoints: saving must not change the training.
    uninterrupted, proc = start(reference, "--save_strategy", "no"), start(killed)
    first = killed / f"checkpoint-{SAVE_EVERY}" / "trainer_state.json"  # Trainer writes it last
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert first.exists() and not (killed / "all_results.json").exists()  # a killed run is not 'finished'
    first_saved = os.path.getmtime(first)

    resumed = run_recipe(TASK, *_args(tiny_model, demo_data, killed, "--resume_from_checkpoint", "auto"))
    assert f"--resume_from_checkpoint auto: resuming from {killed}{os.sep}checkpoint-" in resumed.stderr
    assert os.path.getmtime(first) == first_saved  # not trained again from step 0
    assert uninterrupted.wait(timeout=600) == 0
    # Same seed, same data order (Trainer skips the batches already seen and restores the RNG states), so
    # the weights, hence every evaluation metric, come out identical.
    assert _eval_metrics(killed) == _eval_metrics(reference)
    assert read_json(killed / "trainer_state.json")["global_step"] == STEPS
    # Saved models are safetensors, with no pickle beside them (checkpoints keep Trainer's optimizer state).
    assert (killed / f"checkpoint-{STEPS}" / "model.safetensors").exists()
    for out in (killed, reference):
        assert (out / "model.safetensors").exists()
        assert not [p for p in os.listdir(out) if p.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle"))]

    # The finished run is refused without --overwrite_output_dir (checked in-process: no second launch).
    from common import args
    from common.errors import UserError
    with pytest.raises(UserError, match="already holds a finished run.*pass --overwrite_output_dir"):
        args.parse(argv=[str(a) for a in _args(tiny_model, demo_data, reference)])


def test_resume_auto_without_checkpoints_starts_fresh_and_a_missing_path_is_an_error(tiny_model, demo_data, tmp_path):
    from common import args
    from common.errors import UserError
    cfg = args.parse(argv=["--output_dir", str(tmp_path / "new"), "--resume_from_checkpoint", "auto"])
    assert cfg.training.resume_from_checkpoint is None
    # A checkpoint cut short by a crash (no trainer_state.json yet) is skipped by 'auto'.
    (tmp_path / "old" / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "old" / "checkpoint-5" / "trainer_state.json").write_text("{}")
    (tmp_path / "old" / "checkpoint-10").mkdir()
    (tmp_path / "old" / "checkpoint-10" / "model.safetensors").write_text("")
    cfg = args.parse(argv=["--output_dir", str(tmp_path / "old"), "--resume_from_checkpoint", "auto"])
    assert cfg.training.resume_from_checkpoint == str(tmp_path / "old" / "checkpoint-5")
    with pytest.raises(UserError, match="--resume_from_checkpoint .*nope: no such directory"):
        args.parse(argv=["--output_dir", str(tmp_path / "x"), "--resume_from_checkpoint", str(tmp_path / "nope")])
    with pytest.raises(UserError, match="no readable trainer_state.json"):
        args.parse(argv=["--output_dir", str(tmp_path / "x"), "--resume_from_checkpoint",
                         str(tmp_path / "old" / "checkpoint-10")])
    # 'auto' with nothing to resume must not turn into overwriting a finished run.
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "all_results.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a finished run"):
        args.parse(argv=["--output_dir", str(tmp_path / "done"), "--resume_from_checkpoint", "auto"])


def test_nan_loss_stops_the_run_naming_the_step_and_the_causes(tiny_model, demo_data, tmp_path):
    """A learning rate of 1e30 overflows the tiny model's weights after one update: the next loss is nan
    (without the recipe's warm-up, whose first step has a learning rate of 0)."""
    out = tmp_path / "out"
    args = _args(tiny_model, demo_data, out, "--learning_rate", 1e30, "--warmup_steps", 0, "--save_strategy", "no",
                 "--do_eval", "false")
    proc = run_recipe(TASK, *args, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert last.startswith("error: loss became nan at step 2 (epoch "), last
    assert "--learning_rate (now 1e+30)" in last and "--bf16 instead of --fp16" in last and "--max_grad_norm" in last
    assert not (out / "all_results.json").exists() and not (out / "model.safetensors").exists()


def test_model_code_from_a_repository_runs_only_with_trust_remote_code(tmp_path):
    """A model directory whose config points at its own Python file: without --trust_remote_code the file is
    never imported (it would leave a marker) and the run stops with a one-line error naming the flag."""
    from common import args, modeling
    from common.errors import UserError
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(
        '{"model_type": "custom", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}')
    (model_dir / "configuration_custom.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('EXECUTED').write_text('ran')\n"
        "from transformers import PretrainedConfig\nclass CustomConfig(PretrainedConfig):\n    model_type = 'custom'\n")
    cfg = args.parse(argv=["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(model_dir)])
    assert cfg.model.trust_remote_code is False
    with pytest.raises(UserError, match="needs its own Python code to load; read that code, then pass --trust_remote_code"):
        modeling.load_config(cfg.model)
    assert not (model_dir / "EXECUTED").exists()


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    from common import artifacts
    path = tmp_path / "predictions.jsonl"
    artifacts.write_jsonl(path, [{"id": 1}])
    with pytest.raises(UnicodeEncodeError):  # fails inside the write, after the temporary file is opened
        artifacts.write_jsonl(path, [{"id": 1}, {"id": 2, "text": "\ud800"}])
    assert path.read_text() == '{"id": 1}\n' and os.listdir(tmp_path) == ["predictions.jsonl"]
