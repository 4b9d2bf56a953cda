"""Files a run writes. Written whole or not at all: to a temporary name first, then renamed."""
import json
import os


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
