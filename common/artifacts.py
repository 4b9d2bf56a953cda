"""Files a run writes. Written whole or not at all: to a temporary name first, then renamed."""
import json
import os


def write_json(path, obj):
    _atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_plain) + "\n")


def write_jsonl(path, rows):
    _atomic_write(path, "".join(json.dumps(row, ensure_ascii=False, default=_plain) + "\n" for row in rows))


def write_text(path, text):
    _atomic_write(path, text)


def _atomic_write(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _plain(value):
    """numpy scalars and arrays as JSON numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
