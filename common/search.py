"""Hyperparameter search with Optuna, through `Trainer.hyperparameter_search`.

    python recipes/<task>/run.py config.yaml --hpo_trials 20            # search, then train the best again

The study lives in a storage (default sqlite:///<output_dir>/hpo.db), so a search survives restarts and
is shared: the same command run again continues it, and any number of workers started on one storage
and study name split its trials. Each trial's objective is its best evaluation; the median pruner stops
trials that fall behind. When the last worker finishes, it trains the best trial's settings again and
saves that model like a normal run, next to best_run.json, trials.csv and two plots.
"""
import dataclasses
import logging
import os
import shutil
import time
import warnings
from typing import Optional

import optuna
import torch

from common import artifacts
from common.args import did_you_mean, read_config_file
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
LORA_SPACE = {"lora_r": [4, 8, 16, 32], "lora_alpha": [8, 16, 32, 64], "lora_dropout": {"low": 0.0, "high": 0.2}}
# A frozen encoder leaves a small head to train, which wants a far larger learning rate: trials that
# freeze draw it from frozen_learning_rate instead, or most of them would be wasted.
FREEZE_SPACE = {"freeze_encoder": [False, True], "frozen_learning_rate": {"low": 1e-3, "high": 3e-2, "log": True}}
# What make_model reads from ModelArguments, so what a trial may change about the model.
MODEL_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "freeze_encoder")
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
BEST_RUN, TRIALS, HISTORY_PLOT, IMPORTANCE_PLOT = "best_run.json", "trials.csv", "hpo_history.png", "hpo_importances.png"


class SearchSpace:
    """Parameter name → a list (categorical), {low, high[, log, step]} (int when both ends are ints, else
    float) or a single value (fixed). TrainingArguments names go to the Trainer, the MODEL_KEYS to make_model."""

    def __init__(self, spec: dict, source: str, cfg):
        from transformers import TrainingArguments
        training_keys = {f.name for f in dataclasses.fields(TrainingArguments)}
        self.spec, self.training_keys = spec, set()
        for name, value in spec.items():
            if name == "frozen_learning_rate":
                if "freeze_encoder" not in spec:
                    raise UserError(f"{source}: 'frozen_learning_rate' goes with a 'freeze_encoder' choice")
            elif name in MODEL_KEYS:
                if name.startswith("lora_") and not cfg.model.lora:
                    raise UserError(f"{source}: '{name}' is searched but the model has no LoRA: add --lora")
            elif name in training_keys:
                self.training_keys.add(name)
            else:
                raise UserError(f"{source}: '{name}' is not a TrainingArguments field or one of "
                                f"{', '.join(MODEL_KEYS)}{did_you_mean(name, training_keys | set(MODEL_KEYS))}")
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
        """Every parameter, suggested in one place: the Trainer and make_model read the same trial."""
        params = {}
        for name in sorted(self.spec, key=lambda key: key != "freeze_encoder"):  # freezing first: see below
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
                params[name] = suggest(key, spec["low"], spec["high"], log=spec.get("log", False),
                                       **({"step": spec["step"]} if "step" in spec else {}))
            else:
                params[name] = trial.suggest_categorical(key, [spec])
        return params

    def training_params(self, trial) -> dict:
        """The hp_space for Trainer.hyperparameter_search."""
        return {k: v for k, v in self.suggest(trial).items() if k in self.training_keys}

    def model_args(self, trial, model_args):
        if trial is None:
            return model_args
        return dataclasses.replace(model_args, **{k: v for k, v in self.suggest(trial).items() if k in MODEL_KEYS})

    def prepare(self, training_args):
        """Trainer casts each suggested value to the type of the current one: make float fields floats,
        or a warm-up ratio of 0.1 would become int(0.1) == 0."""
        for name in self.training_keys:
            spec = self.spec[name]
            if isinstance(spec, dict) and isinstance(getattr(training_args, name), int) and not all(
                    isinstance(spec[k], int) for k in ("low", "high")):
                setattr(training_args, name, float(getattr(training_args, name)))


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


class SearchTrainerMixin:
    """What a Trainer needs on top of transformers' search: a trial's objective is its best evaluation,
    not its last; pruning is decided by the main process and obeyed by all (under accelerate launch every
    rank trains the same trial); other ranks follow the main one's trials; one progress line per trial."""

    search: "Search" = None

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        if trial is None or self.hp_search_backend is None:
            return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
        self.objective, started, outcome = None, time.time(), "failed"
        try:
            result = super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
            outcome = "finished"
            return result
        except optuna.TrialPruned:
            outcome = "pruned"
            raise
        except DivergedLoss as err:  # a diverging setting is a bad trial, not the end of the search
            outcome = f"pruned ({str(err).split(':')[0]})"
            raise optuna.TrialPruned() from err
        except SurplusTrial:
            outcome = "not run (the study has its trials)"
            raise
        finally:
            self.search.trial_ended(self, trial, outcome, time.time() - started)

    def _report_to_hp_search(self, trial, step, metrics):
        if self.hp_search_backend is None or trial is None:
            return
        value = self.compute_objective(metrics.copy())
        if self.objective is None or (value > self.objective) == self.search.maximize:
            self.objective = value
        prune = False
        if hasattr(trial, "study"):  # a live trial, on the main process; others hold a FixedTrial copy
            trial.report(self.objective, step)
            prune = trial.should_prune()
        if self.args.world_size > 1:
            prune = _broadcast(prune)
        if prune:
            self.callback_handler.on_train_end(self.args, self.state, self.control)
            raise optuna.TrialPruned()

    def follow_trials(self, search):
        """Non-main ranks: train each trial the main process broadcasts, until it sends None."""
        from accelerate.utils.memory import release_memory
        from transformers.trainer_utils import HPSearchBackend
        self.hp_search_backend, self.hp_space = HPSearchBackend.OPTUNA, search.space.training_params
        self.compute_objective = search.objective
        while (trial := _broadcast(None)) is not None:
            try:
                self.train(trial=trial)
            except optuna.TrialPruned:
                pass
            self.model_wrapped, self.model = release_memory(self.model_wrapped, self.model)
            self.accelerator.clear()
        self.hp_search_backend = None


class SurplusTrial(Exception):
    """A trial started by one worker while others had already started the study's last trials."""


class Search:
    def __init__(self, cfg, space: SearchSpace):
        self.cfg, self.space, self.run_args = cfg, space, cfg.run
        training = cfg.training
        if cfg.run.hpo_metric:
            name = cfg.run.hpo_metric
            self.maximize = not any(word in name for word in ("loss", "error", "mse", "mae", "rmse", "perplexity"))
        else:
            name, self.maximize = training.metric_for_best_model, training.greater_is_better
        self.metric = name if name.startswith("eval_") else f"eval_{name}"
        self.started, self.heartbeat = time.time(), False

    def objective(self, metrics: dict) -> float:
        if self.metric not in metrics:
            raise UserError(f"--hpo_metric: no '{self.metric}' among the evaluation results "
                            f"({', '.join(sorted(metrics))})")
        return metrics[self.metric]

    def hp_space(self, trial) -> dict:
        """The trial's TrainingArguments values, after making sure the trial belongs to the study's first
        --hpo_trials (by number, which the storage hands out atomically). Workers that finish at the same
        moment may both start one more trial; the later-numbered is failed as surplus before any training."""
        if hasattr(trial, "study"):
            earlier = [t for t in trial.study.get_trials(deepcopy=False, states=self.counted_states)
                       if t.number < trial.number]
            if len(earlier) >= self.run_args.hpo_trials:
                trial.set_user_attr("surplus", True)
                trial.study.stop()
                raise SurplusTrial(f"the study had {self.run_args.hpo_trials} trials before this one")
        return self.space.training_params(trial)

    def model_init(self, make_model):
        def model_init(trial=None):
            model = make_model(self.space.model_args(trial, self.cfg.model))
            if hasattr(trial, "study"):
                trial.set_user_attr("trainable_parameters", sum(p.numel() for p in model.parameters()
                                                                 if p.requires_grad))
            return model
        return model_init

    # ---- storage and study ----
    def storage(self):
        url = self.run_args.hpo_storage or f"sqlite:///{os.path.abspath(self.cfg.training.output_dir)}/hpo.db"
        self.heartbeat = not (url.startswith("journal:") or url.endswith((".log", ".journal")))
        if not self.heartbeat:
            from optuna.storages.journal import JournalFileBackend, JournalStorage
            return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        interval = self.run_args.hpo_heartbeat_interval
        for attempt in range(5):
            try:
                # The heartbeat marks trials of a killed worker as failed (after 2 intervals) and queues
                # their parameters again, so a resumed or parallel search still ends with its trial count.
                return optuna.storages.RDBStorage(
                    url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
                    heartbeat_interval=interval, grace_period=2 * interval,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
            except Exception as err:  # noqa: BLE001  (SQLAlchemy raises many kinds for a bad URL)
                if attempt < 4:  # e.g. another worker is creating the same new storage's tables
                    time.sleep(1 + attempt)
                    continue
                raise UserError(f"--hpo_storage {_without_password(url)}: cannot open it "
                                f"({str(err).splitlines()[0]})") from None

    def study_kwargs(self, storage) -> dict:
        pruners = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
                   "none": optuna.pruners.NopPruner}
        return dict(storage=storage, study_name=self.run_args.hpo_study_name, load_if_exists=True,
                    pruner=pruners[self.run_args.hpo_pruner](),
                    sampler=optuna.samplers.TPESampler(seed=self.run_args.hpo_seed))

    @property
    def counted_states(self):
        """Trials that count towards --hpo_trials: finished, pruned and, where a heartbeat can tell live
        ones from those of a killed worker, running."""
        return COUNTED if self.heartbeat else COUNTED[:2]

    def counted(self, study) -> int:
        return len(study.get_trials(deepcopy=False, states=self.counted_states))

    # ---- per trial ----
    def trial_ended(self, trainer, trial, outcome, seconds):
        if trainer.is_world_process_zero():
            run_dir = os.path.join(trainer.args.output_dir, f"run-{trial.number}")
            shutil.rmtree(run_dir, ignore_errors=True)  # a trial's checkpoints; the best is trained again
        if not hasattr(trial, "study"):
            return
        trial.set_user_attr("seconds", round(seconds, 1))
        trial.set_user_attr("epochs_trained", round(trainer.state.epoch or 0, 2))  # less when pruned
        rss = _resident_memory_mb()
        if rss is not None:
            trial.set_user_attr("rss_mb", rss)
        if torch.cuda.is_available():
            trial.set_user_attr("cuda_allocated_mb", round(torch.cuda.memory_allocated() / 2 ** 20))
        done = self.counted(trial.study)
        if done >= self.run_args.hpo_trials:
            trial.study.stop()  # the study has its trials (this one included): no worker starts another
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        value = "" if trainer.objective is None else f" {self.metric}={trainer.objective:.4f}"
        print(f"search: trial {trial.number} {outcome} in {seconds:.0f}s{value} | {params} "
              f"[{min(done, self.run_args.hpo_trials)}/{self.run_args.hpo_trials} trials]", flush=True)


def run(trainer, cfg) -> Optional[optuna.trial.FixedTrial]:
    """The trials, then the reports. Returns the best trial's parameters for the final training, or None
    when other workers are still running trials (the last one to finish trains the best)."""
    search = trainer.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from trial_ended
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat, plots
    search.space.prepare(trainer.args)
    if trainer.args.process_index != 0:
        trainer.follow_trials(search)
        fixed = _broadcast(None)
        if fixed is not None:
            _train_best_next(trainer, search)
        return fixed
    storage = search.storage()
    study = optuna.create_study(direction="maximize" if search.maximize else "minimize",
                                **search.study_kwargs(storage))
    if search.heartbeat:
        optuna.storages.fail_stale_trials(study)
    _check_same_space(study, search.space)
    remaining = cfg.run.hpo_trials - search.counted(study)
    print(f"search: study '{study.study_name}' has {cfg.run.hpo_trials - max(remaining, 0)} of "
          f"{cfg.run.hpo_trials} trials; optimising {search.metric} ({'max' if search.maximize else 'min'})",
          flush=True)
    if remaining > 0:
        try:
            trainer.hyperparameter_search(
                hp_space=search.hp_space, compute_objective=search.objective, n_trials=remaining,
                direction=study.direction.name.lower(), backend="optuna", timeout=cfg.run.hpo_timeout,
                gc_after_trial=True, catch=(SurplusTrial,), **search.study_kwargs(storage))
        except ValueError:  # transformers reads study.best_trial, which raises when no trial finished
            if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                raise  # _report below says so in one line
    if trainer.args.world_size > 1:
        _broadcast(None)  # the search is over for the ranks following this one
    best = _report(study, search, cfg.training.output_dir)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if running and search.heartbeat:
        print(f"search: {len(running)} trial(s) still running in other workers; the last one to finish "
              f"trains the best model", flush=True)
        best = None
    else:
        print(f"search: best trial {best.number} ({search.metric}={best.value:.4f}); training it again", flush=True)
    fixed = None if best is None else optuna.trial.FixedTrial(best.params, best.number)
    fixed = _broadcast(fixed) if trainer.args.world_size > 1 else fixed
    if fixed is not None:
        _train_best_next(trainer, search)
    return fixed


def _train_best_next(trainer, search):
    """trainer.train(trial=<the best, fixed>) then applies its parameters through transformers' own
    machinery (training arguments, batch size, model_init); its checkpoints go to output_dir itself."""
    from transformers.trainer_utils import HPSearchBackend, SaveStrategy
    trainer.hp_search_backend, trainer.hp_space = HPSearchBackend.OPTUNA, search.space.training_params
    trainer.compute_objective, trainer.hp_name = search.objective, lambda trial: ""
    # The trial's value is its best evaluation: keep that model from the final run too, not the last one.
    args = trainer.args
    args.load_best_model_at_end, args.save_strategy = True, SaveStrategy(args.eval_strategy.value)
    args.save_steps, args.save_total_limit = args.eval_steps, args.save_total_limit or 1


def best_settings(cfg, trial):
    """cfg as trained with the best trial (its training values are already in cfg.training, which is the
    Trainer's args) and without a search: what run_config.yaml records for training it again."""
    model = dataclasses.replace(cfg.model, **{k: v for k, v in trial.params.items() if k in MODEL_KEYS})
    return cfg._replace(model=model, run=dataclasses.replace(cfg.run, hpo_trials=0))


def _check_same_space(study, space):
    """A study resumed with another space would mix incomparable trials (and its best could not be trained)."""
    finished = study.get_trials(deepcopy=False, states=COUNTED[:2])
    other = next((t for t in finished if not set(t.params) <= set(space.spec)), None)
    if other is not None:
        raise UserError(f"--hpo_study_name {study.study_name}: the study's trials searched "
                        f"{sorted(other.params)}, this space searches {sorted(space.spec)}; choose a new "
                        f"--hpo_study_name (or --hpo_storage) for a different space")


def _report(study, search, output_dir):
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    artifacts.write_text(os.path.join(output_dir, TRIALS), frame.to_csv(index=False))
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise UserError(f"search: no trial of study '{study.study_name}' finished (all pruned or failed); "
                        f"see {os.path.join(output_dir, TRIALS)}, change --hpo_space or use --hpo_pruner none")
    best = study.best_trial
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    artifacts.write_json(os.path.join(output_dir, BEST_RUN), {
        "trial": best.number, "metric": search.metric, "value": best.value,
        "direction": "maximize" if search.maximize else "minimize", "params": best.params,
        "trials": {state: states.count(state) for state in sorted(set(states))},
        "study_name": study.study_name, "search_seconds": round(time.time() - search.started, 1)})
    _plot(study, output_dir)
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
            logger.warning("search: no %s (%s)", name, str(err).splitlines()[0])


def _broadcast(value):
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _resident_memory_mb():
    try:
        with open("/proc/self/statm") as fh:
            return round(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20)
    except (OSError, ValueError):
        return None


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value


def _without_password(url):
    import re
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
