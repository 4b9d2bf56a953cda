"""The run itself, the same for every task: build the Trainer, then train → save → evaluate each
evaluation set → predict → write artifacts."""
import dataclasses
import json
import logging
import math
import os

from torch.utils.data import SequentialSampler
from transformers import EarlyStoppingCallback, Trainer
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, number_of_arguments

from common import args as arguments
from common import artifacts, imbalance, learning_rates, modeling, reports, search, stalled_loss
from common import data
from common.data import TEST, TRAIN
from common.errors import DivergedLoss, UserError

logger = logging.getLogger(__name__)


class RecipeTrainer(Trainer):
    """Trainer that evaluates and predicts in dataset order (with group_by_length, transformers 5 also
    length-groups evaluation batches, which shuffles predictions against their examples), and that tells
    compute_metrics which dataset it is scoring: tasks whose features are windows of longer examples (NER,
    QA) need it to map predictions back to their examples."""
    run_args = None  # the recipe's RunArguments: --head_learning_rate, --layerwise_lr_decay

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        self.scored_dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        self.scored_dataset = test_dataset
        return super().predict(test_dataset, ignore_keys, metric_key_prefix)

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


def build_trainer(cfg, make_model, tokenizer, encoded, collator, compute_metrics, main_metric, compute_loss_func=None):
    """make_model(model_args) -> model: called once, or once per trial under --hpo_trials (with that trial's
    LoRA / freezing choices in model_args). main_metric: (name, greater_is_better), the default for
    best-checkpoint selection, early stopping and the search objective.
    compute_metrics(eval_prediction) or compute_metrics(eval_prediction, dataset): the second form also
    receives the encoded dataset being scored (its columns are all there, unused ones included)."""
    eval_names = data.eval_names(encoded)
    learning_rates.check_flags(cfg.run)
    _configure_model_selection(cfg, main_metric, has_eval=bool(eval_names))
    train = _training_split(cfg, encoded, compute_loss_func)
    callbacks = [EarlyStoppingCallback(cfg.run.early_stopping_patience)] if cfg.run.early_stopping_patience else []
    callbacks += stalled_loss.callbacks_for(cfg.model)  # one line if a LoRA/frozen run hardly learned
    if compute_metrics is not None and number_of_arguments(compute_metrics) == 2:
        compute_metrics = _with_scored_dataset(compute_metrics)
    if cfg.run.hpo_trials:  # a search builds a model per trial: the Trainer gets model_init
        searcher = _start_search(cfg, has_eval=bool(eval_names))
        trainer_class, model = SearchTrainer, dict(model_init=searcher.model_init(make_model))
    else:
        trainer_class, model = RecipeTrainer, dict(model=make_model(cfg.model))
    trainer = trainer_class(
        **model, args=cfg.training, processing_class=tokenizer, data_collator=collator,
        train_dataset=train,
        eval_dataset=encoded[eval_names[0]] if eval_names else None,  # the first set picks checkpoints
        compute_metrics=compute_metrics, compute_loss_func=compute_loss_func, callbacks=callbacks)
    trainer.run_args = cfg.run
    if isinstance(compute_metrics, _with_scored_dataset):
        compute_metrics.trainer = trainer
    if cfg.run.hpo_trials:
        trainer.search = searcher
    return trainer


def _training_split(cfg, encoded, compute_loss_func):
    """The training split, oversampled under --oversample; the imbalance flags checked against the recipe."""
    if not cfg.training.do_train:
        return None
    for flag in ("class_weights", "focal_gamma"):
        if getattr(cfg.run, flag) is not None and compute_loss_func is None:
            raise UserError(f"--{flag}: this recipe has no class-weighted or focal loss (text classification, NLI "
                            f"and NER have); drop the flag")
    if not cfg.run.oversample:
        return encoded[TRAIN]
    label_column = (cfg.training.label_names or ["labels"])[0]
    if label_column not in encoded[TRAIN].column_names:
        raise UserError("--oversample: this recipe's training examples have no class label to balance")
    return imbalance.oversampled(encoded[TRAIN], label_column, cfg.training.seed)


class SearchTrainer(search.SearchTrainerMixin, RecipeTrainer):
    pass


def _start_search(cfg, has_eval):
    """Checked before anything is written: a search needs training, evaluations during it, a valid space."""
    if cfg.run.hpo_trials < 0:
        raise UserError(f"--hpo_trials {cfg.run.hpo_trials}: give a number of trials (0: no search)")
    if not cfg.training.do_train or not has_eval or cfg.training.eval_strategy == IntervalStrategy.NO:
        raise UserError("--hpo_trials needs --do_train, an evaluation set (--validation_file) and evaluations "
                        "during training (--eval_strategy epoch or steps)")
    return search.Search(cfg, search.SearchSpace.from_args(cfg))


class _with_scored_dataset:
    def __init__(self, compute_metrics):
        self.compute_metrics, self.trainer = compute_metrics, None

    def __call__(self, eval_prediction):
        return self.compute_metrics(eval_prediction, self.trainer.scored_dataset)


def run(trainer, cfg, raw, encoded, write_predictions=None):
    """write_predictions(split, prediction_output, raw_split, output_dir) writes a split's prediction files."""
    training = cfg.training
    main_process = trainer.is_world_process_zero()
    finished_marker = os.path.join(training.output_dir, arguments.FINISHED_MARKER)
    if main_process:
        os.makedirs(training.output_dir, exist_ok=True)
        if os.path.exists(finished_marker):  # --overwrite_output_dir: a crash must not leave the old marker
            os.remove(finished_marker)
        arguments.save_resolved(cfg, training.output_dir)
    all_results, best_trial = {}, None
    if cfg.run.hpo_trials and training.do_train:
        best_trial = search.run(trainer, cfg)
        if best_trial is None:
            return  # other workers are still running trials; the last to finish trains the best
        all_results.update(hpo_best_trial=best_trial.number, hpo_trials=cfg.run.hpo_trials)
    if training.do_train:
        result = trainer.train(resume_from_checkpoint=training.resume_from_checkpoint, trial=best_trial)
        if best_trial is not None and main_process:  # a config that trains the best again, no search
            arguments.save_resolved(search.best_settings(cfg, best_trial), training.output_dir)
        save_model(trainer)
        metrics = {**result.metrics, "train_samples": len(trainer.train_dataset)}
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics, combined=False)
        trainer.save_state()
        all_results.update(metrics)
    splits = (raw.eval_names if training.do_eval else []) + ([TEST] if training.do_predict else [])
    for split in splits:
        prefix = "predict" if split == TEST else "eval" if split == raw.eval_names[0] else f"eval_{split}"
        output = trainer.predict(encoded[split], metric_key_prefix=prefix)
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
            reports.finish(trainer, cfg, all_results)
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
