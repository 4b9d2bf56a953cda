"""The run itself, the same for every task: build the Trainer, then train → save → evaluate each
evaluation set → predict → write artifacts."""
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
from typing import Callable, Optional

import datasets
from torch.utils.data import SequentialSampler
from transformers import EarlyStoppingCallback, Trainer, set_seed
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from common import args as arguments
from common import artifacts, modeling, reports, search
from common import data
from common.data import TEST, TRAIN
from common.errors import DivergedLoss, UserError
from common.techniques import imbalance, learning_rates, stalled_loss, weight_averaging

logger = logging.getLogger(__name__)


class RecipeTrainer(Trainer):
    """Trainer that evaluates and predicts in dataset order (with group_by_length, transformers 5 also
    length-groups evaluation batches, which shuffles predictions against their examples), and that hands
    its scorer the name of the split being scored: tasks whose features are windows of longer examples (NER,
    QA) need it to map predictions back to their examples.
    score(eval_prediction, split) -> metrics; eval_split: the split Trainer's own evaluations score."""

    def __init__(self, *trainer_args, score=None, eval_split=None, run_args=None, **trainer_kwargs):
        super().__init__(*trainer_args, **trainer_kwargs)
        self.score, self.eval_split = score, eval_split
        self.run_args = run_args  # the recipe's RunArguments: --head_learning_rate, --layerwise_lr_decay

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval", split=None):
        with self._scoring(split or self.eval_split):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test", split=TEST):
        with self._scoring(split):
            return super().predict(test_dataset, ignore_keys, metric_key_prefix)

    @contextlib.contextmanager
    def _scoring(self, split):
        """Trainer calls compute_metrics(eval_prediction): for this one evaluation, the scorer bound to the split."""
        self.compute_metrics = functools.partial(self.score, split=split) if self.score else None
        try:
            yield
        finally:
            self.compute_metrics = None

    def _get_eval_sampler(self, eval_dataset):
        if self.args.train_sampling_strategy != "group_by_length" or eval_dataset is None:
            return super()._get_eval_sampler(eval_dataset)
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # Stop on a nan/inf loss instead of training on garbage (logging_nan_inf_filter would hide it in the
        # logs). Reading the loss is a device sync: free on a CPU, so every step there; on an accelerator
        # only on logging steps, which still catches divergence: once the weights are nan, every loss is.
        step = self.state.global_step + 1
        if loss.device.type == "cpu" or step % max(self.state.logging_steps or 1, 1) == 0:
            value = loss.float().sum().item()
            if not math.isfinite(value):
                args = self.args
                raise DivergedLoss(
                    f"loss became {value} at step {step} (epoch {self.state.epoch or 0:.2f}): training diverged; "
                    f"lower --learning_rate (now {args.learning_rate:g}), use --bf16 instead of --fp16"
                    f"{' (on now)' if args.fp16 else ''}, or clip gradients with --max_grad_norm (now "
                    f"{args.max_grad_norm:g}); check the data for extreme values")
        return loss

    def create_optimizer(self, model=None):
        """Trainer's optimizer; its parameter groups split by learning rate under --head_learning_rate or
        --layerwise_lr_decay."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and self.run_args is not None and learning_rates.wanted(self.run_args):
            self.optimizer = optimizer = learning_rates.split_groups(
                optimizer, self.model if model is None else model, self.args, self.run_args)
        return optimizer

    def save_metrics(self, split, metrics, combined=True):
        """<split>_results.json, written atomically (Trainer's own writes in place). all_results.json is
        written once, by run(), as the marker of a finished run."""
        if self.is_world_process_zero():
            artifacts.write_json(os.path.join(self.args.output_dir, f"{split}_results.json"), metrics)

    def save_state(self):
        if self.is_world_process_zero():  # as Trainer's, but atomic
            artifacts.write_text(os.path.join(self.args.output_dir, "trainer_state.json"),
                                 json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n")


@dataclasses.dataclass
class TrainerFactory:
    """What a recipe's Trainer is made of, all but its settings: run() builds one for the run, or one per
    trial under --hpo_trials. make_model(model_args) -> model (a trial may change LoRA or freezing choices).
    main_metric: (name, greater_is_better), the default for best-checkpoint selection, early stopping and
    the search objective. compute_metrics(eval_prediction, split) -> metrics: split is the name of the split
    scored (its encoded and raw rows are the task's to look up); None: the loss only."""
    make_model: Callable
    tokenizer: object
    encoded: object
    collator: Callable
    compute_metrics: Optional[Callable]
    main_metric: tuple
    compute_loss_func: Optional[Callable] = None

    def build(self, cfg, callbacks=(), fold=None) -> "RecipeTrainer":
        """The run's Trainer; with fold=i (a --hpo_folds trial's run i), trained on the other folds and
        scored on fold i."""
        eval_names, train = data.eval_names(self.encoded), self.encoded.get(TRAIN)
        if fold is not None:
            folds = data.fold_names(self.encoded)
            eval_names = [folds[fold]]
            train = _joined([self.encoded[name] for name in folds if name != folds[fold]])
        if cfg.run.early_stopping_patience:
            callbacks = [*callbacks, EarlyStoppingCallback(cfg.run.early_stopping_patience)]
        callbacks = [*callbacks, *stalled_loss.callbacks_for(cfg.model)]  # one line if LoRA/frozen hardly learned
        callbacks = [*callbacks, *weight_averaging.callbacks_for(cfg.run)]
        set_seed(cfg.training.seed)  # the new head starts the same in every run: a trial and its retraining alike
        trainer = RecipeTrainer(
            model=self.make_model(cfg.model), args=cfg.training, processing_class=self.tokenizer,
            data_collator=self.collator, train_dataset=_training_split(cfg, train, self.compute_loss_func),
            eval_dataset=self.encoded[eval_names[0]] if eval_names else None,  # the first set picks checkpoints
            compute_loss_func=self.compute_loss_func, callbacks=list(callbacks),
            score=self.compute_metrics, eval_split=eval_names[0] if eval_names else None, run_args=cfg.run)
        return trainer


def _joined(parts):
    """Encoded splits as one: Datasets (the text recipes) or lists of examples (the time-series recipe)."""
    if isinstance(parts[0], datasets.Dataset):
        return datasets.concatenate_datasets(parts)
    return [example for part in parts for example in part]


def _training_split(cfg, train, compute_loss_func):
    """The encoded training rows, oversampled under --oversample; the imbalance flags checked against the recipe."""
    if not cfg.training.do_train:
        return None
    for flag in ("class_weights", "focal_gamma"):
        if getattr(cfg.run, flag) is not None and compute_loss_func is None:
            raise UserError(f"--{flag}: this recipe has no class-weighted or focal loss (it gives the Trainer "
                            f"no loss function of its own); drop the flag")
    if not cfg.run.oversample:
        return train
    label_column = (cfg.training.label_names or ["labels"])[0]
    if label_column not in train.column_names:
        raise UserError("--oversample: this recipe's training examples have no class label to balance")
    return imbalance.oversampled(train, label_column, cfg.training.seed)


def _check_search(cfg, has_eval):
    """A search needs training and an evaluation set; without an evaluation strategy it evaluates every
    epoch. Returns cfg, with that strategy where it was not given."""
    if not cfg.training.do_train or not has_eval:
        raise UserError("--hpo_trials needs --do_train and an evaluation set (--validation_file, or "
                        "--validation_split_percentage to hold out part of train)")
    if cfg.training.eval_strategy != IntervalStrategy.NO:
        return cfg
    if "eval_strategy" in cfg.run.given:
        raise UserError("--hpo_trials needs evaluations during training: --eval_strategy epoch or steps, not no")
    logger.warning("search: no --eval_strategy given; each trial evaluates every epoch")
    return cfg._replace(training=dataclasses.replace(cfg.training, eval_strategy="epoch"))


def run(trainers: TrainerFactory, cfg, raw, encoded, write_predictions=None, usage=None):
    """Train (or search, then train the best) → save → evaluate each evaluation set → predict → write
    artifacts. write_predictions(split, prediction_output, raw_split, output_dir) writes a split's files;
    usage(model_dir) -> the model card's "Use it" code (the task's; default: the model class).
    Everything is checked before anything is written."""
    has_eval = bool(data.eval_names(encoded))  # flags' own values: checked by args.parse
    _configure_model_selection(cfg, trainers.main_metric, has_eval)
    _training_split(cfg, encoded.get(TRAIN), trainers.compute_loss_func)  # its flag checks
    search_results = {}
    if cfg.run.hpo_trials:
        cfg = _check_search(cfg, has_eval or bool(data.fold_names(encoded)))
        searcher = search.Search(cfg, train=functools.partial(_train_trial, trainers))
        if searcher.main_process:
            searcher.open_study()  # a storage that cannot be reached stops the run here
            os.makedirs(cfg.training.output_dir, exist_ok=True)
            if not os.path.exists(os.path.join(cfg.training.output_dir, arguments.RUN_FINISHED_MARKER)):
                arguments.save_resolved(cfg, cfg.training.output_dir)  # the search's own settings, meanwhile
        outcome = searcher.run()
        if not outcome.train_best:
            return
        searched = cfg.training
        cfg, search_results = outcome.best_cfg, dict(hpo_best_trial=outcome.best_trial.number,
                                                      hpo_trials=cfg.run.hpo_trials)
        if cfg.run.hpo_folds:  # chosen on folds: the run trains to the end; evaluation data only reports
            cfg = cfg._replace(training=dataclasses.replace(
                cfg.training, load_best_model_at_end=False, save_strategy=searched.save_strategy,
                save_steps=searched.save_steps, eval_strategy=cfg.training.eval_strategy if has_eval else "no"))
    run_once(trainers.build(cfg), cfg, raw, encoded, write_predictions, search_results, usage)


def _train_trial(trainers, trial_cfg, callbacks, fold=None):
    """A search trial's training run (on fold's complement, under --hpo_folds). Under --average_last_epochs it
    also scores the averaged weights it ends on, so the trial's value (its best evaluation) counts what the
    run would save."""
    trainer = trainers.build(trial_cfg, callbacks, fold)
    trainer.train()
    if trial_cfg.run.average_last_epochs and not any(getattr(callback, "pruned", False) for callback in callbacks):
        trainer.evaluate()


def run_once(trainer, cfg, raw, encoded, write_predictions=None, search_results=None, usage=None):
    """One training run with cfg's settings; search_results (the best trial's number) go into all_results.json."""
    training = cfg.training
    main_process = trainer.is_world_process_zero()
    finished_marker = os.path.join(training.output_dir, arguments.RUN_FINISHED_MARKER)
    if main_process:
        os.makedirs(training.output_dir, exist_ok=True)
        if os.path.exists(finished_marker):  # --overwrite_output_dir: a crash must not leave the old marker
            os.remove(finished_marker)
        arguments.save_resolved(cfg, training.output_dir)
    all_results = dict(search_results or {})
    if training.do_train:
        result = trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
        save_model(trainer)
        metrics = {**result.metrics, "train_samples": len(trainer.train_dataset)}
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics, combined=False)
        trainer.save_state()
        all_results.update(metrics)
    splits = (raw.eval_names if training.do_eval else []) + ([TEST] if training.do_predict else [])
    for split in splits:
        prefix = "predict" if split == TEST else "eval" if split == raw.eval_names[0] else f"eval_{split}"
        output = trainer.predict(encoded[split], metric_key_prefix=prefix, split=split)
        metrics = {**output.metrics, f"{prefix}_samples": len(encoded[split])}
        trainer.log_metrics(prefix, metrics)
        trainer.save_metrics(prefix, metrics, combined=False)
        all_results.update(metrics)
        if write_predictions and main_process:
            write_predictions(split, output, raw.splits[split], training.output_dir)
    if training.do_train and cfg.model.merge_lora and modeling.is_lora(trainer.model) and main_process:
        # After evaluation, because merging folds the adapter into the weights in place.
        modeling.save_merged(trainer.model, trainer.processing_class, training.output_dir)
    if main_process:
        if training.do_train:  # learning curve + model card (README.md)
            reports.finish(trainer, cfg, all_results, usage)
        artifacts.write_json(finished_marker, all_results)  # written last: its presence marks a finished run


def save_model(trainer):
    """Model + tokenizer + config with the label names, so pipeline() loads the output directory.
    A LoRA run saves its adapter to <output_dir>/adapter; the merged model follows at the end of run()."""
    if not modeling.is_lora(trainer.model):
        trainer.save_model()
        return _drop_pickled_args(trainer, trainer.args.output_dir)
    adapter_dir = os.path.join(trainer.args.output_dir, modeling.ADAPTER_DIR)
    trainer.save_model(adapter_dir)
    if trainer.is_world_process_zero():
        trainer.model.get_base_model().config.save_pretrained(adapter_dir)
        # The run's settings beside the adapter too: answer(), predict and export read how inputs were
        # encoded (QA's capital marks, the columns) from the directory they are given.
        shutil.copy(os.path.join(trainer.args.output_dir, arguments.RESOLVED_CONFIG_NAME), adapter_dir)
    _drop_pickled_args(trainer, adapter_dir)


def _drop_pickled_args(trainer, directory):
    """Trainer also pickles its arguments (training_args.bin); a saved model holds no pickle, and
    run_config.yaml has the same settings in plain text. (Checkpoints keep theirs: Trainer's own files.)"""
    path = os.path.join(directory, "training_args.bin")
    if trainer.is_world_process_zero() and os.path.exists(path):
        os.remove(path)


def _configure_model_selection(cfg, main_metric, has_eval):
    training = cfg.training
    if training.metric_for_best_model is None:
        training.metric_for_best_model, training.greater_is_better = main_metric
    if not cfg.run.early_stopping_patience:
        return
    if training.eval_strategy == IntervalStrategy.NO or not has_eval:
        raise UserError("--early_stopping_patience needs evaluation during training: pass --validation_file "
                        "and --eval_strategy epoch (or steps)")
    # Early stopping keeps the best checkpoint, so checkpoints must be saved when evaluations happen.
    training.load_best_model_at_end = True
    training.save_strategy = SaveStrategy(training.eval_strategy.value)
    training.save_steps = training.eval_steps
