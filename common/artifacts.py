"""Files a run writes. Written whole or not at all: to a temporary name first, then renamed.

A split's files are named after it: `<split>_<name>` (validation_predictions.jsonl), and plain `<name>` for
the test split (predictions.jsonl), as HF's example scripts name them. split_file builds such a name, and
split_of reads it back.
"""
import json
import os

from common.data import TEST

PREDICTIONS = "predictions.jsonl"  # one row per example of a split: what every recipe writes


def split_file(output_dir, split, name):
    """<output_dir>/<name> for the test split (or no split), <output_dir>/<split>_<name> for the others."""
    return os.path.join(output_dir, name if split in (TEST, None) else f"{split}_{name}")


def split_of(file_name, name):
    """The split a file split_file named (test for the plain name); None for another file."""
    if file_name == name:
        return TEST
    return file_name[:-len(name) - 1] if file_name.endswith(f"_{name}") else None


def write_json(path, obj):
    _atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_plain) + "\n")


def write_jsonl(path, rows):
    _atomic_write(path, "".join(json.dumps(row, ensure_ascii=False, default=_plain) + "\n" for row in rows))


def write_text(path, text):
    _atomic_write(path, text)


def save_figure(figure, path):
    tmp = f"{path}.tmp{os.getpid()}.png"
    figure.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def _atomic_write(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:  # disk full, interrupted: leave the old file, and no temporary one
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _plain(value):
    """numpy scalars and arrays as JSON numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
