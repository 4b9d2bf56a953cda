"""Average the weights of the last N epochs' ends (--average_last_epochs N).

On small data the last epochs wander about a minimum; the mean of their end points sits nearer its centre
and scores more steadily than any one of them (checkpoint averaging, Vaswani et al. 2017; stochastic weight
averaging, Izmailov et al. 2018), at no extra training step. The mean replaces the trained weights when
training ends, so evaluation, prediction and the saved model all use it. Only what trains is kept (a LoRA
run's adapters, a frozen encoder's head), with the floating-point buffers (norm statistics), on the CPU.
"""
import collections
import logging

import torch
from transformers import TrainerCallback

from common.errors import UserError

logger = logging.getLogger(__name__)


def check_flags(run_args, training):
    count = run_args.average_last_epochs
    if not count:
        return
    if count < 2:
        raise UserError(f"--average_last_epochs {count}: give 2 or more epochs to average (0: off)")
    if not training.do_train:
        raise UserError("--average_last_epochs averages the weights a training run passes through: it needs "
                        "--do_train")
    if training.load_best_model_at_end or run_args.early_stopping_patience:  # the latter sets the former, later
        cause = "--early_stopping_patience" if run_args.early_stopping_patience else "--load_best_model_at_end"
        raise UserError(f"--average_last_epochs with {cause}: both choose the final weights; drop one of the two")
    if training.deepspeed or training.fsdp:
        raise UserError("--average_last_epochs averages whole (unsharded) weights; drop it with --deepspeed/--fsdp")


def callbacks_for(run_args) -> list:
    return [EpochAverage(run_args.average_last_epochs)] if run_args.average_last_epochs else []


class EpochAverage(TrainerCallback):
    def __init__(self, count):
        self.snapshots = collections.deque(maxlen=count)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.snapshots.clear()  # a Trainer trained twice (a search's trials) starts afresh

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.snapshots.append({name: tensor.detach().to("cpu", copy=True) for name, tensor in averaged(model)})

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if len(self.snapshots) < 2:
            logger.warning("--average_last_epochs: training ended after %d epoch end(s); nothing to average",
                           len(self.snapshots))
            return
        with torch.no_grad():
            for name, tensor in averaged(model):
                mean = torch.stack([snapshot[name].float() for snapshot in self.snapshots]).mean(0)
                tensor.copy_(mean.to(tensor.dtype))
        logger.info("--average_last_epochs: the weights are the mean of the last %d epochs' ends (epoch %.2f)",
                    len(self.snapshots), state.epoch or 0)


def averaged(model):
    """(name, tensor) of what changes in training: trainable parameters and floating-point buffers."""
    yield from ((name, p) for name, p in model.named_parameters() if p.requires_grad)
    yield from ((name, b) for name, b in model.named_buffers() if b.is_floating_point())
