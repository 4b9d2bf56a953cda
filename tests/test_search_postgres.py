"""Search workers sharing one study on a real PostgreSQL server (tests/conftest.py `postgres_url`): real
recipes in subprocesses, started together, killed, pointed at storages that cannot be opened."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import sqlalchemy

from conftest import OFFLINE_ENV, ROOT, read_json, run_recipe
from test_search import TASK, _search_args, _space

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
RUNNING = optuna.trial.TrialState.RUNNING


def _worker(command_args, **popen):
    command = [sys.executable, str(ROOT / "recipes" / TASK / "run.py"), *map(str, command_args)]
    return subprocess.Popen(command, cwd=ROOT, env=OFFLINE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def _wait_for_a_running_trial(url, study_name, worker):
    """Until the study shows a trial of this worker running. Killing a worker some seconds after its first
    trial line did not always kill it in a trial: on a busy CI machine the other worker had taken the last
    trials, the victim's next one was surplus and nothing was left to fail."""
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name=study_name, storage=url).get_trials(states=(RUNNING,))
        except (KeyError, sqlalchemy.exc.SQLAlchemyError):  # the study, or its tables, not created yet
            trials = []
        if any(trial.user_attrs.get("worker") == worker for trial in trials):
            return
        time.sleep(0.2)
    raise AssertionError(f"no trial of {worker} was running within 300 s")


def _study_args(url, study, trials):
    return ["--hpo_storage", url, "--hpo_study_name", study, "--hpo_trials", str(trials),
            "--hpo_heartbeat_interval", "3"]  # 6 s without a heartbeat: dead, even on a busy machine


def test_three_workers_started_together_on_a_new_study(tiny_model, demo_data, tmp_path, postgres_url):
    """The creation race (optuna #1092/#4621): the study is created once, has exactly N counted trials with
    distinct numbers, and one worker trains the best; every best_run.json names the same trial."""
    study_name, space = f"race-{uuid.uuid4().hex[:8]}", _space(tmp_path, num_train_epochs=[1])
    outs = [tmp_path / name for name in "abc"]
    workers = [_worker(_search_args(tiny_model, demo_data, out, space, "--hpo_pruner", "none",
                                    *_study_args(postgres_url, study_name, 4))) for out in outs]
    results = [w.communicate(timeout=900) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], "\n".join(err[-1500:] for _, err in results)

    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    trials = study.get_trials()
    counted = [t for t in trials if t.state in COUNTED]
    assert len(counted) == 4 and len({t.number for t in trials}) == len(trials)
    assert all(t.user_attrs.get("surplus") for t in trials if t not in counted)  # failed before training
    trained = [out for out in outs if (out / "all_results.json").exists()]
    assert len(trained) == 1, [stdout[-800:] for stdout, _ in results]
    assert read_json(trained[0] / "all_results.json")["hpo_best_trial"] == study.best_trial.number
    named = {read_json(out / "best_run.json")["trial"] for out in outs if (out / "best_run.json").exists()}
    assert named == {study.best_trial.number}
    # Each trial reported once, by the worker that took it, surplus ones as not trained.
    assert sum(stdout.count("search: trial ") for stdout, _ in results) == len(trials)
    assert sum(stdout.count(" not trained: ") for stdout, _ in results) == len(trials) - len(counted)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # retried_trial_number, as the search uses it
def test_a_killed_worker_trial_is_retried_and_a_restarted_worker_joins(tiny_model, demo_data, tmp_path,
                                                                       postgres_url):
    study_name, space = f"kill-{uuid.uuid4().hex[:8]}", _space(tmp_path, num_train_epochs=[3])
    args = {name: _search_args(tiny_model, demo_data, tmp_path / name, space, "--hpo_pruner", "none",
                               *_study_args(postgres_url, study_name, 6)) for name in ("a", "b")}
    victim = _worker(args["a"], start_new_session=True)
    other = _worker(args["b"])
    _wait_for_a_running_trial(postgres_url, study_name, f"{socket.gethostname()}:{victim.pid}")
    time.sleep(1)  # its heartbeat thread records before the trial names its worker; a second to be sure
    os.killpg(victim.pid, signal.SIGKILL)  # in the middle of its first trial
    victim.wait()
    restarted = run_recipe(TASK, *args["a"])  # the same command again: it joins the same study
    stdout, stderr = other.communicate(timeout=900)
    assert other.returncode == 0, stderr[-2000:]

    trials = optuna.load_study(study_name=study_name, storage=postgres_url).get_trials()
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get("surplus")]
    assert len(failed) == 1  # the killed worker's trial, failed by the heartbeat
    counted = [t for t in trials if t.state in COUNTED]
    assert len(counted) == 6
    retries = [t for t in counted if optuna.storages.RetryFailedTrialCallback.retried_trial_number(t) == failed[0].number]
    assert len(retries) == 1 and retries[0].params == failed[0].params  # its parameters, trained again
    assert f"search: study '{study_name}' has " in restarted.stdout  # the restarted worker joined the study
    trained = [name for name in ("a", "b") if (tmp_path / name / "all_results.json").exists()]
    assert len(trained) == 1


@pytest.mark.parametrize("problem", ["wrong password", "unknown host", "missing database"])
def test_a_storage_that_cannot_be_opened_stops_before_writing(tiny_model, demo_data, tmp_path, postgres_url,
                                                              problem):
    user, rest = postgres_url.removeprefix("postgresql://").split(":", 1)
    password, address = rest.split("@", 1)
    url = {"wrong password": f"postgresql://{user}:not-{password}@{address}",
           "unknown host": f"postgresql://{user}:{password}@no-such-host.invalid:5432/optuna",
           "missing database": f"postgresql://{user}:{password}@{address.rsplit('/', 1)[0]}/no_such_db"}[problem]
    out = tmp_path / "out"
    proc = run_recipe(TASK, *_search_args(tiny_model, demo_data, out, _space(tmp_path), "--hpo_trials", "2",
                                          "--hpo_storage", url), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: --hpo_storage postgresql://postgres:***@") and "cannot open it" in error
    assert password not in proc.stderr
    assert not out.exists()


def test_the_readmes_two_machine_commands(tiny_model, tmp_path, postgres_url):
    """The README's PostgreSQL block as written, its run.py line started twice at once as two machines (fast
    flags appended): one study, no duplicate or lost trial, one best model."""
    import re
    block = re.search(r"<!-- test: postgres -->\s*```bash\n(.*?)\n\s*```", (ROOT / "README.md").read_text(), re.S)
    lines = [line.strip() for line in block.group(1).replace("\\\n", " ").splitlines()]
    start, run, stop = (next(line for line in lines if key in line) for key in ("postgres.sh start", "run.py",
                                                                                  "postgres.sh stop"))
    for folder in ("common", "recipes", ".ci"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    fast = (f"--model_name_or_path {tiny_model} --hpo_trials 3 --num_train_epochs 1 --hpo_heartbeat_interval 3 "
            "--per_device_train_batch_size 16 --disable_tqdm true --report_to none")
    machines = " & ".join(f"({run.split('#')[0].replace('$(hostname)', name)} {fast} > {name}.log 2>&1)"
                          for name in ("m1", "m2"))
    script = (f"set -euo pipefail\npython -m common.tools.demo_data demo_data >/dev/null\n{start}\n{machines} & wait\n"
              f"python -c \"import optuna, os; print('TRIALS', [t.state.name for t in optuna.load_study("
              f"study_name='nli-minilm', storage=os.environ['HPO_POSTGRES_URL']).trials])\"\n{stop}\n")
    env = {**OFFLINE_ENV, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    logs = "".join((tmp_path / f"{name}.log").read_text()[-1500:] for name in ("m1", "m2") if (tmp_path / f"{name}.log").exists())
    assert done.returncode == 0, f"{script}\n{done.stderr[-2000:]}\n{logs}"
    states = eval(done.stdout.split("TRIALS", 1)[1].strip())
    assert states.count("COMPLETE") + states.count("PRUNED") == 3
    assert all(state in ("COMPLETE", "PRUNED") or state == "FAIL" for state in states)
    assert len(list(tmp_path.glob("outputs/nli_m*/all_results.json"))) == 1  # the best model, trained once
