"""Multi-process runs: the shipped accelerate config files load and validate through accelerate's own code, and
extractive QA trains under the 2-process CPU config with every evaluation window scored exactly once."""
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from common.tasks import squad
from common.tools import demo_data as demo
from conftest import FAST, OFFLINE_ENV, ROOT, read_json, read_jsonl, run_recipe, write_jsonl

CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))


def _launch_args(config_file):
    """accelerate's launcher parses the file the way `accelerate launch --config_file` does, without launching."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    parser = launch_command_parser()
    launch_args, defaults, _ = _validate_launch_command(
        parser.parse_args(["--config_file", str(config_file), "recipes/nli/run.py"]))
    return parser, launch_args, defaults


@pytest.mark.parametrize("config_file", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_accelerate_config_files_load_and_validate(config_file, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
    config = load_config_from_file(str(config_file))  # rejects unknown top-level keys
    assert isinstance(config, ClusterConfig)
    parser, launch_args, defaults = _launch_args(config_file)
    # Keys inside deepspeed_config / fsdp_config become launch flags: a misspelt one would be ignored silently.
    known = {action.dest for action in parser._actions}
    inner = {**config.deepspeed_config, **config.fsdp_config}
    assert not set(inner) - known, f"unknown keys in {config_file.name}: {set(inner) - known}"
    assert launch_args.num_processes == config.num_processes >= 2
    expected = {"fsdp": DistributedType.FSDP, "deepspeed_zero2": DistributedType.DEEPSPEED,
                "deepspeed_zero3": DistributedType.DEEPSPEED}.get(config_file.stem, DistributedType.MULTI_GPU)
    assert config.distributed_type == expected
    # The plugins the processes would build from the launcher's environment (DeepSpeed itself is not installed:
    # its plugin is checked as far as accelerate goes without it).
    if expected == DistributedType.FSDP:
        for key, value in prepare_multi_gpu_env(launch_args).items():
            monkeypatch.setenv(key, value)
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.transformer_cls_names_to_wrap == ["BertLayer"]
        assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # output_dir gets one whole model file
    elif expected == DistributedType.DEEPSPEED:
        launch_args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        for key, value in prepare_deepspeed_cmd_env(launch_args)[1].items():
            monkeypatch.setenv(key, value)
        plugin = DeepSpeedPlugin()
        stage = int(config_file.stem[-1])
        assert plugin.zero_stage == stage and plugin.deepspeed_config["zero_optimization"]["stage"] == stage
        assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"  # from the recipe's flags
    if config_file.stem == "multi_node":
        assert config.num_machines == 2 and config.main_process_ip and config.main_process_port


def _qa_rows(n_short, n_long):
    """Short contexts (one window) and long ones (two windows at --max_seq_length 48)."""
    rows = demo.qa_rows(n_short + n_long, random.Random(11), "d-")
    filler = " ".join(demo.FILLER)
    for row in rows[n_short:]:
        shift = len(filler) + 1
        row["context"] = f"{filler} {row['context']}"
        row["answers"]["answer_start"] = [s + shift for s in row["answers"]["answer_start"]]
    return rows


def test_qa_under_the_two_process_cpu_config_scores_each_window_once(tiny_model, tmp_path):
    """13 one-window questions and 6 of two or three windows: 26 windows, which 2 processes x 4 per batch do not
    divide, so the last batch is padded with repeats; they must be dropped before the answers are scored
    (span_extraction raises when the window predictions do not match the windows one to one)."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    write_jsonl(tmp_path / "train.jsonl", demo.qa_rows(32, random.Random(10), "t-"))
    dev = _qa_rows(13, 6)
    write_jsonl(tmp_path / "dev.jsonl", dev)
    out = tmp_path / "out"
    window_args = ["--max_seq_length", "48", "--doc_stride", "8"]
    proc = run_recipe("qa", "--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.jsonl",
               "--validation_file", tmp_path / "dev.jsonl", "--do_train", "--do_eval", "--num_train_epochs", "1",
               "--output_dir", out, *window_args, *FAST, "--per_device_eval_batch_size", "4",
               launcher=[accelerate, "launch", "--config_file", str(ROOT / "configs/accelerate/cpu_2_processes.yaml")])
    assert proc.stderr.count("trainable parameters:") == 2  # logged by each of the 2 processes
    results = read_json(out / "all_results.json")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    windows = sum(len(tokenizer(r["question"], r["context"], truncation="only_second", max_length=48, stride=8,
                                return_overflowing_tokens=True)["input_ids"]) for r in dev)
    assert windows == 26 and results["eval_samples"] == 26
    # One prediction per question, written once; the reported scores are those of the file's answers.
    rows = read_jsonl(out / "validation_predictions.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in dev]
    recomputed = squad.score({r["id"]: r["prediction"] for r in rows}, {r["id"]: r["answers"] for r in rows})
    assert results["eval_exact_match"] == pytest.approx(recomputed["exact_match"])
    assert results["eval_f1"] == pytest.approx(recomputed["f1"])
    # The processes really share the work: each step takes 16 windows on each of the 2.
    assert read_json(out / "trainer_state.json")["global_step"] == -(-results["train_samples"] // 32)
    assert Path(out / "model.safetensors").exists()


def _launch(config, *flags):
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    return [accelerate, "launch", "--config_file", str(ROOT / "configs/accelerate" / config), "--mixed_precision",
            "no", *flags]


def _on_two_nodes(task, args):
    """configs/accelerate/multi_node.yaml for real: two launchers on this machine as nodes 0 and 1 (CPU, gloo,
    one process each), as a user runs the same command on two machines."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nodes = [subprocess.Popen(
        [*_launch("multi_node.yaml", "--num_processes", "2", "--machine_rank", str(rank), "--main_process_ip",
                  "127.0.0.1", "--main_process_port", str(port)), str(ROOT / "recipes" / task / "run.py"),
         *map(str, args)], cwd=ROOT, env=OFFLINE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)]
    outputs = [node.communicate(timeout=900) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(err[-2000:] for _, err in outputs)
    return outputs


def _sentiment_args(tiny_model, demo_data, out, *extra):
    return ["recipes/text_classification/config.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
            "--train_file", demo_data / "sentiment/train.csv", "--validation_file",
            demo_data / "sentiment/validation.csv", "--test_file", demo_data / "sentiment/test.csv",
            "--max_train_samples", "128", "--num_train_epochs", "2",
            "--learning_rate", "1e-3", *FAST, *extra]


def test_two_nodes_train_as_two_processes_on_one_node(tiny_model, demo_data, tmp_path):
    one_node = run_recipe("text_classification", *_sentiment_args(tiny_model, demo_data, tmp_path / "one"),
                          launcher=_launch("cpu_2_processes.yaml"))
    assert one_node.stderr.count("trainable parameters:") == 2
    (_, node0), (_, node1) = _on_two_nodes("text_classification", _sentiment_args(tiny_model, demo_data, tmp_path / "two"))
    assert node0.count("trainable parameters:") == node1.count("trainable parameters:") == 1  # a process each
    one, two = (read_json(tmp_path / name / "all_results.json") for name in ("one", "two"))
    assert two["eval_accuracy"] == one["eval_accuracy"] and two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
    assert read_json(tmp_path / "two" / "trainer_state.json")["global_step"] == -(-128 // 32) * 2  # 16 a process


def test_a_search_runs_its_trials_on_both_nodes(tiny_model, demo_data, tmp_path):
    import optuna
    search = ["--hpo_trials", "2", "--hpo_seed", "0", "--hpo_pruner", "none", "--save_strategy", "epoch"]
    run_recipe("text_classification", *_sentiment_args(tiny_model, demo_data, tmp_path / "one", *search),
               launcher=_launch("cpu_2_processes.yaml"))
    (out0, node0), (_, node1) = _on_two_nodes("text_classification",
                                              _sentiment_args(tiny_model, demo_data, tmp_path / "two", *search))
    assert out0.count("search: trial ") == 2  # printed by the main process
    assert node1.count("trainable parameters:") == 3  # node 1 trained both trials and the best again
    values = [[t.value for t in optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / name}/hpo.db").trials]
              for name in ("one", "two")]
    assert values[0] == pytest.approx(values[1])  # the same trials, the same results
    assert read_json(tmp_path / "two" / "all_results.json")["eval_accuracy"] == pytest.approx(
        read_json(tmp_path / "one" / "all_results.json")["eval_accuracy"])
