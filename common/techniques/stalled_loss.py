"""One line at the end of a LoRA or frozen-encoder run whose training loss never fell much below its start.

Such a run trains few weights, and with too low a learning rate or too few steps it ends close to where it
began while looking like any other finished run (issue 20: LoRA on query/value at 5e-4 went from 1.10 to 1.01
in 90 steps). Judged on the logged losses (every --logging_steps), so a run with fewer than two logs says nothing.
"""
import logging

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

MIN_DROP = 0.2  # the lowest later loss must be at least 20% below the first logged one

HINTS = {
    "lora": "the adapters have hardly learned: raise --learning_rate (now {lr:g}; adapters usually want 5e-4 to "
            "2e-3), train longer (--num_train_epochs), or adapt more (--lora_r 16; the default --lora_target_modules "
            "all-linear, if you narrowed it)",
    "freeze_encoder": "the head on the frozen encoder has hardly learned: raise --learning_rate (now {lr:g}; a head "
                      "alone usually wants 1e-3 to 1e-2), train longer (--num_train_epochs), or let the encoder "
                      "learn (--lora, or drop --freeze_encoder)",
}


def callbacks_for(model_args) -> list:
    """The callback for a run that trains few weights (--lora, --freeze_encoder); none otherwise."""
    kind = "lora" if model_args.lora else "freeze_encoder" if model_args.freeze_encoder else None
    return [StalledLossWarning(kind)] if kind else []


class StalledLossWarning(TrainerCallback):
    def __init__(self, kind):
        self.kind = kind

    def on_train_end(self, args, state, control, **kwargs):
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        if len(losses) < 2 or not state.is_world_process_zero:
            return
        first, lowest = losses[0], min(losses[1:])
        if lowest > (1 - MIN_DROP) * first:
            logger.warning("training loss fell only from %.3f to %.3f in %d steps (--%s): %s", first, lowest,
                           state.global_step, self.kind, HINTS[self.kind].format(lr=args.learning_rate))
