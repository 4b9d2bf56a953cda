"""Hyperparameter search: an Optuna loop around ordinary training runs.

    python recipes/<task>/run.py config.yaml --hpo_trials 20            # search, then train the best again

Each trial is one training run with the trial's settings, on a Trainer of its own; a TrainerCallback reports
every evaluation to the trial and stops the run when the pruner says so. The objective is the trial's best
evaluation. The study lives in a storage (default sqlite:///<output_dir>/hpo.db; a PostgreSQL URL for
workers on many machines; a journal file on a shared file system without a database server), so the same
command run again continues a search, a larger --hpo_trials grows it, and any number of workers started on
one storage and study name share its trials. When the study has its trials, the worker that ran the last of
them trains the best settings again as an ordinary run, beside best_run.json, trials.csv and two plots.

Under accelerate launch the main process talks to the study: it sends each trial's parameters to every rank
before the trial's training starts, and each evaluation's pruning decision, so all ranks train the same
trial and stop together.
"""
import dataclasses
import datetime
import gc
import json
import logging
import os
import re
import shutil
import socket
import statistics
import time
import warnings
from typing import Callable, NamedTuple, Optional

import optuna
import torch
from transformers import TrainerCallback, TrainingArguments

from common import artifacts
from common.args import RUN_FINISHED_MARKER, did_you_mean, read_config_file
from common.errors import DivergedLoss, UserError

logger = logging.getLogger(__name__)

# The default space. Floats in [0, 1) for warmup_steps are warm-up ratios in transformers 5.
DEFAULT_SPACE = {
    "learning_rate": {"low": 1e-5, "high": 2e-4, "log": True},
    "per_device_train_batch_size": [16, 32],
    "num_train_epochs": {"low": 1, "high": 4},
    "warmup_steps": {"low": 0.0, "high": 0.2},
    "weight_decay": {"low": 0.0, "high": 0.1},
}
# Adapters want about 10x full fine-tuning's learning rate (common.args.LORA_LEARNING_RATE, 5e-4): with --lora
# this range replaces the default one.
LORA_SPACE = {"learning_rate": {"low": 1e-4, "high": 3e-3, "log": True}, "lora_r": [4, 8, 16, 32],
              "lora_alpha": [8, 16, 32, 64], "lora_dropout": {"low": 0.0, "high": 0.2}}
# A frozen encoder leaves a small head to train, which wants a far larger learning rate: trials that
# freeze draw it from frozen_learning_rate instead, or most of them would be wasted.
FREEZE_SPACE = {"freeze_encoder": [False, True], "frozen_learning_rate": {"low": 1e-3, "high": 3e-2, "log": True}}
# What make_model reads from ModelArguments, so what a trial may change about the model.
MODEL_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "freeze_encoder", "reinit_top_layers",
              "classifier_pooling")
TRAINING_KEYS = frozenset(f.name for f in dataclasses.fields(TrainingArguments) if f.init)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
BEST_RUN, TRIALS, HISTORY_PLOT, IMPORTANCE_PLOT = "best_run.json", "trials.csv", "hpo_history.png", "hpo_importances.png"
BEST_MODEL_ATTR = "best_model"  # study user attribute: which trial is trained as the best, on which host, where
RUNS_ATTR = "runs_per_trial"  # study user attribute: --hpo_runs_per_trial, the same for all its trials
FOLDS_ATTR = "folds"  # study user attribute: --hpo_folds (0: scored on the evaluation set), the same for all
LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "perplexity")


class SearchSpace:
    """Parameter name → a list (categorical), {low, high[, log, step]} (int when both ends are ints, else
    float) or a single value (fixed). TrainingArguments names go to the Trainer, the MODEL_KEYS to make_model."""

    def __init__(self, spec: dict, source: str, cfg):
        self.spec = spec
        for name, value in spec.items():
            if name == "frozen_learning_rate":
                if "freeze_encoder" not in spec:
                    raise UserError(f"{source}: 'frozen_learning_rate' goes with a 'freeze_encoder' choice")
            elif name in MODEL_KEYS:
                if name.startswith("lora_") and not cfg.model.lora:
                    raise UserError(f"{source}: '{name}' is searched but the model has no LoRA: add --lora")
            elif name not in TRAINING_KEYS:
                raise UserError(f"{source}: '{name}' is not a TrainingArguments field or one of "
                                f"{', '.join(MODEL_KEYS)}{did_you_mean(name, TRAINING_KEYS | set(MODEL_KEYS))}")
            _check_spec(name, value, source)
        if cfg.model.lora and spec.get("freeze_encoder") not in (None, False, [False]):
            raise UserError(f"{source}: 'freeze_encoder' cannot be searched with --lora (both decide what trains)")

    @classmethod
    def from_args(cls, cfg):
        path = cfg.run.hpo_space
        if path is None:
            spec = {**DEFAULT_SPACE, **(LORA_SPACE if cfg.model.lora else FREEZE_SPACE)}
            return cls(spec, "the default search space", cfg)
        return cls(read_config_file(path, what="--hpo_space file"), path, cfg)

    def suggest(self, trial) -> dict:
        """Every parameter of the trial, by its setting's name (a frozen trial's learning rate is drawn from
        frozen_learning_rate but returned as learning_rate)."""
        params = {}
        for name in sorted(self.spec, key=lambda key: key != "freeze_encoder"):  # freezing first: see above
            spec, key = self.spec[name], name
            if name == "frozen_learning_rate":
                continue
            if name == "learning_rate" and params.get("freeze_encoder") and "frozen_learning_rate" in self.spec:
                spec, key = self.spec["frozen_learning_rate"], "frozen_learning_rate"
            if isinstance(spec, list):
                params[name] = trial.suggest_categorical(key, spec)
            elif isinstance(spec, dict):
                ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("low", "high"))
                suggest = trial.suggest_int if ints else trial.suggest_float
                step = {"step": spec["step"]} if "step" in spec else {}
                params[name] = suggest(key, spec["low"], spec["high"], log=spec.get("log", False), **step)
            else:
                params[name] = trial.suggest_categorical(key, [spec])
        return params


def apply(cfg, params: dict, **training_changes):
    """cfg with a trial's parameters: TrainingArguments values into cfg.training, the rest into cfg.model."""
    training = {k: v for k, v in params.items() if k in TRAINING_KEYS}
    model = {k: v for k, v in params.items() if k in MODEL_KEYS}
    try:
        training_args = dataclasses.replace(cfg.training, **training, **training_changes)
    except ValueError as err:  # e.g. a searched value TrainingArguments refuses
        raise UserError(f"search: the trial's settings {training}: {str(err).splitlines()[0]}") from None
    return cfg._replace(model=dataclasses.replace(cfg.model, **model), training=training_args)


def _check_spec(name, spec, source):
    if isinstance(spec, list):
        if not spec:
            raise UserError(f"{source}: '{name}' has an empty list of choices")
    elif isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log", "step"}
        if unknown or not {"low", "high"} <= set(spec):
            raise UserError(f"{source}: '{name}' needs {{low, high}} and optionally log, step; got {sorted(spec)}")
        if not spec["low"] < spec["high"] or (spec.get("log") and spec["low"] <= 0):
            raise UserError(f"{source}: '{name}': need 0 < low < high for log, low < high otherwise")


class Objective(NamedTuple):
    metric: str  # eval_<name>, as the Trainer reports it
    maximize: bool

    @classmethod
    def from_args(cls, cfg):
        if cfg.run.hpo_metric:
            name = cfg.run.hpo_metric
            maximize = not any(word in name for word in LOWER_IS_BETTER)
        else:
            name, maximize = cfg.training.metric_for_best_model, cfg.training.greater_is_better
        return cls(name if name.startswith("eval_") else f"eval_{name}", maximize)

    def value(self, metrics: dict) -> float:
        if self.metric not in metrics:
            raise UserError(f"--hpo_metric: no '{self.metric}' among the evaluation results "
                            f"({', '.join(sorted(metrics))})")
        return metrics[self.metric]

    def better(self, value, than) -> bool:
        return than is None or (value > than if self.maximize else value < than)


class TrialReporter(TrainerCallback):
    """Reports each evaluation to the trial (the best so far: a trial's value is its best evaluation) and
    stops training when the pruner says so. On every rank; only the main one holds the live trial, and its
    decision is sent to the others, so all ranks stop at the same step."""

    def __init__(self, objective: Objective, trial: Optional[optuna.Trial], world_size: int):
        self.objective, self.trial, self.world_size = objective, trial, world_size
        self.best, self.pruned, self.reported_step = None, False, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.trial is not None and model is not None:
            self.trial.set_user_attr("trainable_parameters", sum(p.numel() for p in model.parameters()
                                                                 if p.requires_grad))

    def on_train_end(self, args, state, control, **kwargs):
        if self.trial is not None:
            self.trial.set_user_attr("epochs_trained", round(state.epoch or 0, 2))  # fewer when pruned

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = self.objective.value(metrics)
        if self.objective.better(value, self.best):
            self.best = value
        prune = False
        if self.trial is not None and state.global_step != self.reported_step:  # after training: once more, same step
            self.trial.report(self.best, state.global_step)
            self.reported_step = state.global_step
            prune = self.trial.should_prune()
        if self.world_size > 1:
            prune = _broadcast(prune)
        if prune:
            self.pruned = control.should_training_stop = True


class Outcome(NamedTuple):
    """What the search leaves for the run: the best trial and its settings, and whether this worker trains it."""
    best_trial: optuna.trial.FrozenTrial
    best_cfg: object  # common.args.Config
    train_best: bool


class Search:
    """The trials of one worker. train(trial_cfg, callbacks) is one ordinary training run."""

    def __init__(self, cfg, train: Callable):
        self.cfg, self.train, self.run_args = cfg, train, cfg.run
        self.space, self.objective = SearchSpace.from_args(cfg), Objective.from_args(cfg)
        self.output_dir, self.world_size = cfg.training.output_dir, cfg.training.world_size
        self.main_process = cfg.training.process_index == 0
        self.url = cfg.run.hpo_storage or f"sqlite:///{os.path.abspath(self.output_dir)}/hpo.db"
        self.heartbeat = not _is_journal(self.url)  # RDB storages tell live trials from those of a dead worker
        self.mine, self.started = set(), time.time()
        self.folds = cfg.run.hpo_folds
        self.runs = self.folds or cfg.run.hpo_runs_per_trial  # a trial's training runs: one per fold, or per seed

    # ---- the study ----
    def open_study(self) -> optuna.Study:
        """Create or load the study; a storage that cannot be reached stops here, before anything is written."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from _trial_ended
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat, plots
        if self.url.startswith("sqlite:///"):  # the default storage sits in output_dir
            os.makedirs(os.path.dirname(os.path.abspath(self.url.removeprefix("sqlite:///"))), exist_ok=True)
        pruners = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
                   "none": optuna.pruners.NopPruner}
        for attempt in range(5):
            try:
                # Workers started together race to create the storage's tables and the study: retry.
                study = optuna.create_study(
                    storage=self._storage(), study_name=self.run_args.hpo_study_name, load_if_exists=True,
                    direction="maximize" if self.objective.maximize else "minimize",
                    pruner=pruners[self.run_args.hpo_pruner]())
                break
            except Exception as err:  # noqa: BLE001  (SQLAlchemy raises many kinds for a bad URL)
                if attempt == 4 or _unreachable(err):
                    raise UserError(f"--hpo_storage {_without_password(self.url)}: cannot open it "
                                    f"({_first_line(err)})") from None
                time.sleep(1 + attempt)
        if self.run_args.hpo_seed is not None:
            # A seeded sampler restarts its sequence in every process: offset it by the trials already in the
            # study, or a resumed or grown study tries its first points again.
            study.sampler = optuna.samplers.TPESampler(seed=self.run_args.hpo_seed + len(study.trials))
        self.study = study
        if self.heartbeat:
            self._fail_dead_trials()
        self._check_comparable(study)
        finished = self.study.get_trials(deepcopy=False, states=FINISHED)  # not running ones: they may still end
        self.complete_at_start = len(finished) >= self.run_args.hpo_trials
        return study

    def _storage(self):
        if not self.heartbeat:
            from optuna.storages.journal import JournalFileBackend, JournalStorage
            return JournalStorage(JournalFileBackend(self.url.removeprefix("journal:")))
        interval = self.run_args.hpo_heartbeat_interval
        # The heartbeat marks trials of a killed worker as failed (after 2 intervals) and queues their
        # parameters again, so the study still ends with its trial count.
        return optuna.storages.RDBStorage(
            self.url, engine_kwargs={"connect_args": {"timeout": 60}} if self.url.startswith("sqlite") else None,
            heartbeat_interval=interval, grace_period=2 * interval,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))

    def counted_states(self):
        """Trials that count towards --hpo_trials: finished, pruned and, where a heartbeat can tell live
        ones from those of a killed worker, running."""
        return (*FINISHED, optuna.trial.TrialState.RUNNING) if self.heartbeat else FINISHED

    def counted(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=self.counted_states()))

    def _check_comparable(self, study):
        """A study resumed with another space, or another number of runs per trial, would mix incomparable
        trials (and with another space its best could not be trained)."""
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        other = next((t for t in finished if not set(t.params) <= set(self.space.spec)), None)
        if other is not None:
            raise UserError(f"--hpo_study_name {study.study_name}: the study's trials searched "
                            f"{sorted(other.params)}, this space searches {sorted(self.space.spec)}; choose a new "
                            f"--hpo_study_name (or --hpo_storage) for a different space")
        for attr, flag, legacy in ((RUNS_ATTR, "hpo_runs_per_trial", 1), (FOLDS_ATTR, "hpo_folds", 0)):
            given, recorded = getattr(self.run_args, flag), study.user_attrs.get(attr)
            if recorded is None and finished:
                recorded = legacy  # a study from before the setting
            if recorded is None:
                study.set_user_attr(attr, given)
            elif recorded != given:
                raise UserError(f"--{flag} {given}: study '{study.study_name}' was searched with --{flag} "
                                f"{recorded}; give that, or a new --hpo_study_name")

    # ---- the loop ----
    def run(self) -> Outcome:
        """Run trials until the study has --hpo_trials of them, then write the reports. Every rank calls it
        and gets the same outcome."""
        if not self.main_process:
            return self._follow()
        wanted = self.run_args.hpo_trials
        print(f"search: study '{self.study.study_name}' has {min(self.counted(), wanted)} of {wanted} trials; "
              f"optimising {self.objective.metric} ({'max' if self.objective.maximize else 'min'})", flush=True)
        while True:
            if self.counted() < wanted and not self._timed_out():
                self._optimize()
            if not self.heartbeat or self._timed_out():
                break
            self._fail_dead_trials()
            if self.counted() < wanted:
                continue
            if not self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                break
            time.sleep(min(self.run_args.hpo_heartbeat_interval, 5))  # other workers' last trials
        if self.world_size > 1:
            _broadcast(None)  # no more trials for the other ranks
        decision = self._decide()
        return self._outcome(*(_broadcast(decision) if self.world_size > 1 else decision))

    def _fail_dead_trials(self):
        """Trials of killed workers: failed, their parameters queued again. Optuna's heartbeat check sees only
        trials that recorded a heartbeat; a worker killed between taking a trial and its first heartbeat
        leaves one it never sees, which would count as running forever. Every live trial names its worker
        within milliseconds of starting, so a nameless one older than the grace period is dead too."""
        optuna.storages.fail_stale_trials(self.study)
        limit = datetime.datetime.now() - datetime.timedelta(seconds=4 * self.run_args.hpo_heartbeat_interval)
        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if "worker" not in trial.user_attrs and trial.datetime_start and trial.datetime_start < limit:
                try:
                    self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                except ValueError:  # another worker failed it first
                    pass

    def _optimize(self):
        try:
            self.study.optimize(self._objective, timeout=self._time_left(), catch=(SurplusTrial,),
                                callbacks=[self._stop_when_counted])
        except ValueError as err:
            if "Cannot tell a FAIL trial" not in str(err):
                raise
            # Another worker took this one for dead (its heartbeats came late) and queued its parameters
            # again: the result is dropped, the retry trains them.
            logger.warning("search: a trial of this worker was failed by another worker's heartbeat check; "
                           "its parameters are retried (a longer --hpo_heartbeat_interval avoids this on a "
                           "busy machine)")

    def _objective(self, trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # alive: see _fail_dead_trials
        # Workers that finish at the same moment may both start one more trial; trial numbers are handed
        # out atomically, so the later one knows it is surplus and is failed before any training.
        earlier = [t for t in self.study.get_trials(deepcopy=False, states=self.counted_states())
                   if t.number < trial.number]
        if len(earlier) >= self.run_args.hpo_trials:
            trial.set_user_attr("surplus", True)
            print(f"search: trial {trial.number} not trained: the study had {self.run_args.hpo_trials} trials "
                  "before it (another worker took the last one)", flush=True)
            self.study.stop()
            raise SurplusTrial(f"the study had {self.run_args.hpo_trials} trials before this one")
        params = self.space.suggest(trial)
        self.mine.add(trial.number)
        if self.world_size > 1:
            _broadcast((trial.number, params))
        return self._train_trial(trial.number, params, trial)

    def _follow(self) -> Outcome:
        """Ranks other than the main one: train each trial it sends, until it sends None; then its decision."""
        while (sent := _broadcast(None)) is not None:
            try:
                self._train_trial(*sent, trial=None)
            except optuna.TrialPruned:
                pass
        return self._outcome(*_broadcast(None))

    def _train_trial(self, number, params, trial) -> float:
        """The trial's runs, one per fold (--hpo_folds) or per seed (--hpo_runs_per_trial); its value is the
        mean of their best evaluations. Only the first run reports to the pruner: a later run's steps would
        repeat its steps."""
        started, outcome, bests = time.time(), "failed", []
        try:
            for run in range(self.runs):
                reporter = TrialReporter(self.objective, trial if run == 0 else None, self.world_size)
                self._train_run(number, run, params, reporter)
                if reporter.best is None:
                    raise UserError("search: a trial ended without an evaluation; evaluate during training "
                                    "(--eval_strategy epoch or steps)")
                bests.append(reporter.best)
                if reporter.pruned:
                    outcome = "pruned"
                    raise optuna.TrialPruned()
            outcome = "finished"
        except DivergedLoss as err:  # a diverging setting is a bad trial, not the end of the search
            outcome = f"pruned ({str(err).split(':')[0]})"
            raise optuna.TrialPruned() from err
        finally:
            if trial is not None:
                self._trial_ended(trial, outcome, bests, time.time() - started)
        return statistics.mean(bests)

    def _train_run(self, number, run, params, reporter):
        suffix = "" if self.runs == 1 else f"-fold{run}" if self.folds else f"-seed{run}"
        run_dir = os.path.join(self.output_dir, f"run-{number}{suffix}")  # its checkpoints, removed after it
        seed = self.cfg.training.seed + (0 if self.folds else run)  # folds differ in data, seeds in the draw
        try:
            trial_cfg = apply(self.cfg, params, output_dir=run_dir, seed=seed)
            self.train(trial_cfg, [reporter], fold=run if self.folds else None)
        finally:
            if self.main_process:
                shutil.rmtree(run_dir, ignore_errors=True)
            gc.collect()  # the run's model and optimizer, before the next run builds its own
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _trial_ended(self, trial, outcome, bests, seconds):
        trial.set_user_attr("seconds", round(seconds, 1))
        if self.runs > 1:
            trial.set_user_attr("run_values", bests)  # one per fold or seed: the spread behind the mean
        rss = _resident_memory_mb()
        if rss is not None:
            trial.set_user_attr("rss_mb", rss)
        if torch.cuda.is_available():
            trial.set_user_attr("cuda_allocated_mb", round(torch.cuda.memory_allocated() / 2 ** 20))
        done, wanted = min(self.counted(), self.run_args.hpo_trials), self.run_args.hpo_trials
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        value = "" if not bests else f" {self.objective.metric}={statistics.mean(bests):.4f}"
        if len(bests) > 1:
            value += f" ± {statistics.stdev(bests):.4f} over {len(bests)} {'folds' if self.folds else 'seeds'}"
        print(f"search: trial {trial.number} {outcome} in {seconds:.0f}s{value} | {params} [{done}/{wanted} trials]",
              flush=True)

    def _stop_when_counted(self, study, trial):
        if self.counted() >= self.run_args.hpo_trials:
            study.stop()  # the study has its trials (this one included): no worker starts another

    def _time_left(self):
        timeout = self.run_args.hpo_timeout
        return None if timeout is None else max(timeout - (time.time() - self.started), 0)

    def _timed_out(self):
        return self._time_left() == 0

    # ---- the end ----
    def _decide(self):
        """(best trial, whether this worker trains it), after writing the reports. Main process only."""
        best = write_reports(self.study, self.objective, self.output_dir, time.time() - self.started)
        last = max(self.study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number)
        here = {"host": socket.gethostname(), "output_dir": os.path.abspath(self.output_dir)}
        # One worker trains the best: the one that ran the study's last trial, or one started on a study that
        # already had its trials (a search continued where it ended, or grown), unless the study records
        # that another worker trains that trial (a late worker of a job array must not train a copy).
        chosen, claim = last.number in self.mine, {}
        if not self.mine and self.complete_at_start:
            claim = self._claim(last)
            chosen = claim.get("trial") != best.number or {k: claim.get(k) for k in here} == here
        trained_before = _trained_trial(self.output_dir)
        if not self.run_args.hpo_train_best:
            print(f"search: best trial {best.number} ({self.objective.metric}={best.value:.4f}); its settings are "
                  f"in {os.path.join(self.output_dir, BEST_RUN)} (--hpo_train_best false: not trained)", flush=True)
            chosen = False
        elif not chosen:
            who = (f"the worker on {claim['host']} trains it into {claim['output_dir']}" if claim
                   else f"the worker that ran trial {last.number} trains it")
            print(f"search: best trial {best.number} ({self.objective.metric}={best.value:.4f}); {who}", flush=True)
        elif trained_before == best.number:
            print(f"search: best trial {best.number} unchanged; the model in {self.output_dir} is kept", flush=True)
        else:
            changed = "" if trained_before is None else f", was trial {trained_before}"
            print(f"search: best trial {best.number} ({self.objective.metric}={best.value:.4f}{changed}); "
                  f"training it again", flush=True)
            self.study.set_user_attr(BEST_MODEL_ATTR, {"trial": best.number, **here})
        _plot(self.study, self.output_dir)
        return best, chosen and trained_before != best.number

    def _claim(self, last) -> dict:
        """The study's record of which trial is trained as the best, and where. The worker that ran the last
        trial writes it moments after that trial ends; a worker started in those moments waits for it."""
        settle = datetime.timedelta(seconds=5)
        wait = (last.datetime_complete + settle - datetime.datetime.now()).total_seconds()
        if wait > 0:
            time.sleep(wait)
        return self.study.user_attrs.get(BEST_MODEL_ATTR) or {}

    def _outcome(self, best, train_best) -> Outcome:
        return Outcome(best, best_settings(self.cfg, self.space, best), train_best)


class SurplusTrial(Exception):
    """A trial started by one worker while others had already started the study's last trials."""


def best_settings(cfg, space, trial):
    """cfg with the best trial's settings and no search: what the final run trains and run_config.yaml
    records. The trial's value is its best evaluation, so the final run keeps its best checkpoint too."""
    best = apply(cfg, space.suggest(optuna.trial.FixedTrial(trial.params, trial.number)))
    training = dataclasses.replace(best.training, load_best_model_at_end=True,
                                   save_strategy=best.training.eval_strategy.value,
                                   save_steps=best.training.eval_steps,
                                   save_total_limit=best.training.save_total_limit or 1)
    return best._replace(training=training, run=dataclasses.replace(cfg.run, hpo_trials=0))


def write_reports(study, objective, output_dir, seconds) -> optuna.trial.FrozenTrial:
    """trials.csv and best_run.json, from the study as it is now; returns the best trial."""
    os.makedirs(output_dir, exist_ok=True)
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    artifacts.write_text(os.path.join(output_dir, TRIALS), frame.to_csv(index=False))
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise UserError(f"search: no trial of study '{study.study_name}' finished (all pruned or failed); "
                        f"see {os.path.join(output_dir, TRIALS)}, change --hpo_space or use --hpo_pruner none")
    best = study.best_trial
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    artifacts.write_json(os.path.join(output_dir, BEST_RUN), {
        "trial": best.number, "metric": objective.metric, "value": best.value,
        "direction": "maximize" if objective.maximize else "minimize", "params": best.params,
        "trials": {state: states.count(state) for state in sorted(set(states))},
        "runs_per_trial": study.user_attrs.get(RUNS_ATTR, 1), "folds": study.user_attrs.get(FOLDS_ATTR, 0),
        "run_values": best.user_attrs.get("run_values"),
        "study_name": study.study_name, "search_seconds": round(seconds, 1)})
    return best


def _plot(study, output_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    for name, plot in ((HISTORY_PLOT, plots.plot_optimization_history), (IMPORTANCE_PLOT, plots.plot_param_importances)):
        try:
            axes = plot(study)
            artifacts.save_figure(axes.figure, os.path.join(output_dir, name))
            plt.close(axes.figure)
        except (ValueError, RuntimeError) as err:  # e.g. importances need two finished trials
            logger.warning("search: no %s (%s)", name, _first_line(err))


def _trained_trial(output_dir) -> Optional[int]:
    """The trial whose settings output_dir's finished model was trained with, if any."""
    try:
        with open(os.path.join(output_dir, RUN_FINISHED_MARKER)) as fh:
            return json.load(fh).get("hpo_best_trial")
    except (OSError, ValueError):
        return None


def _broadcast(value):
    from accelerate.utils import broadcast_object_list
    return broadcast_object_list([value], from_process=0)[0]


def _is_journal(url):
    return url.startswith("journal:") or url.endswith((".log", ".journal"))


def _unreachable(err) -> bool:
    """Errors a retry cannot fix: a wrong password, an unknown host or database, a missing driver."""
    text = str(err).lower()
    return any(word in text for word in ("password", "does not exist", "could not translate host", "resolve",
                                         "no such host", "import", "connection refused", "name or service"))


def _resident_memory_mb():
    try:
        with open("/proc/self/statm") as fh:
            return round(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20)
    except (OSError, ValueError):
        return None


def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value


def _without_password(url):
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
