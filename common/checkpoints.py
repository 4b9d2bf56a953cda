"""Resuming a run: `--resume_from_checkpoint auto` (the newest complete checkpoint in --output_dir) or a PATH.

Resolved before any work starts, so a wrong path is a one-line error, not a crash after the data is tokenized.
"""
import json
import logging
import os
import re

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from common.errors import UserError

logger = logging.getLogger(__name__)

AUTO = "auto"
STATE_FILE = "trainer_state.json"  # Trainer writes it last into a checkpoint: present and readable = complete
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def resolve_resume(training):
    """Set training.resume_from_checkpoint to a checkpoint directory, or None to start fresh."""
    wanted = training.resume_from_checkpoint
    if not wanted:
        return
    if wanted == AUTO:
        found = last_complete_checkpoint(training.output_dir)
        if found is None:
            logger.warning("--resume_from_checkpoint auto: no complete checkpoint in %s; starting fresh",
                           training.output_dir)
        else:
            logger.warning("--resume_from_checkpoint auto: resuming from %s", found)
        training.resume_from_checkpoint = found
        return
    if not os.path.isdir(wanted):
        raise UserError(f"--resume_from_checkpoint {wanted}: no such directory; give a checkpoint-N directory "
                        f"or 'auto' for the newest one in --output_dir")
    if not _is_complete(wanted):
        raise UserError(f"--resume_from_checkpoint {wanted}: no readable {STATE_FILE} there (not a checkpoint, "
                        f"or one cut short by a crash); give an earlier checkpoint-N or 'auto'")


def last_complete_checkpoint(output_dir):
    """The newest checkpoint-N in output_dir whose trainer_state.json is readable; a run killed while writing
    a checkpoint leaves an incomplete one, which transformers' get_last_checkpoint would pick."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted(((int(m.group(1)), name) for name in os.listdir(output_dir) if (m := _CHECKPOINT.match(name))),
                   reverse=True)
    return next((os.path.join(output_dir, name) for _, name in steps
                 if _is_complete(os.path.join(output_dir, name))), None)


def _is_complete(checkpoint):
    try:
        with open(os.path.join(checkpoint, STATE_FILE), encoding="utf-8") as fh:
            json.load(fh)
        return True
    except (OSError, ValueError):
        return False
