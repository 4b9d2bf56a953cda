"""The label set of a classification or regression task, and how labels become model targets.

The set is the union of the labels in every labelled split (or `--label_list`), in a stable order:
ClassLabel order for Hub datasets, numeric order for integers, alphabetical for strings. It is
stored as id2label/label2id in the model config, so `pipeline()` shows the real names.
"""
import math
from dataclasses import dataclass

from datasets import ClassLabel, List, Sequence, Value

from common.errors import UserError

SINGLE = "single_label_classification"
MULTI = "multi_label_classification"
REGRESSION = "regression"
PROBLEM_TYPES = (SINGLE, MULTI, REGRESSION)


class LabelNames:
    """Names in id order, as a model config wants them (pipeline() shows them). Shared by LabelSet and
    common.tasks.tagging.TagSet."""
    names: list

    @property
    def num_labels(self) -> int:
        return len(self.names)

    @property
    def id2label(self) -> dict:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict:
        return {name: i for i, name in enumerate(self.names)}


def require_known(raw, keys_by_split: dict, allowed, column, noun="label"):
    """Every split's labels are in --label_list."""
    for split, keys in keys_by_split.items():
        unknown = sorted(set(keys) - set(allowed))
        if unknown:
            raise UserError(f"{raw.sources[split]}: {noun}(s) {_show(unknown)} in column '{column}' are "
                            f"not in --label_list; add them or fix the data")


def require_seen_in_train(raw, keys_by_split: dict, noun="label"):
    """--strict_labels: no evaluation/test label that train never shows."""
    if "train" not in keys_by_split:
        return
    for split, keys in keys_by_split.items():
        unseen = sorted(set(keys) - set(keys_by_split["train"]))
        if unseen:
            raise UserError(f"{raw.sources[split]}: {noun}(s) {_show(unseen)} never occur in the train "
                            f"split (--strict_labels); fix the data or drop --strict_labels")


@dataclass
class LabelSet(LabelNames):
    names: list
    problem_type: str = SINGLE
    ids_given: bool = False  # a Hub ClassLabel column already holds ids

    @classmethod
    def from_splits(cls, raw, column, label_list=None, strict=False, problem_type=None):
        """raw: common.data.RawData. problem_type None means: infer it from the values."""
        if problem_type is not None and problem_type not in PROBLEM_TYPES:
            raise UserError(f"--problem_type {problem_type}: use one of {', '.join(PROBLEM_TYPES)}")
        first = raw.splits[next(iter(raw.splits))].features.get(column)
        multi = isinstance(first, (List, Sequence))
        class_label = first.feature if multi else first
        if isinstance(class_label, ClassLabel) and not label_list:
            return cls(list(class_label.names), MULTI if multi else SINGLE, ids_given=True)

        values = {split: [v for v in ds[column] if _is_present(v)]
                  for split, ds in raw.splits.items() if column in ds.column_names}
        _check_types(values, raw, column)
        if problem_type is None:
            problem_type = _infer_problem_type([v for vs in values.values() for v in vs], first)
        if problem_type == REGRESSION:
            _check_numeric(values, raw, column)
            return cls(["score"], REGRESSION)
        values = {split: [v for v in vs if not _is_no_label_id(v)] for split, vs in values.items()}

        keys = {split: _keys(vs, problem_type == MULTI) for split, vs in values.items()}
        if label_list:
            require_known(raw, keys, {label_key(v) for v in label_list}, column)
            return cls([label_key(v) for v in label_list], problem_type)
        if strict:
            require_seen_in_train(raw, keys)
        return cls(_ordered(set().union(*keys.values())), problem_type)

    @property
    def num_labels(self) -> int:
        return 1 if self.problem_type == REGRESSION else len(self.names)

    def encode(self, value):
        """One raw label as a model target: class id, multi-hot floats or a float score."""
        if self.problem_type == REGRESSION:
            return float(value)
        if self.problem_type == MULTI:
            hot = [0.0] * len(self.names)
            for v in value:
                hot[v if self.ids_given else self.label2id[label_key(v)]] = 1.0
            return hot
        return value if self.ids_given else self.label2id[label_key(value)]

    def is_labelled(self, value) -> bool:
        return _is_present(value) and (self.problem_type == REGRESSION or not _is_no_label_id(value))


def _is_present(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _is_no_label_id(value):
    """-1 is the datasets convention for "no label" in integer class columns (GLUE test, SNLI)."""
    return isinstance(value, int) and not isinstance(value, bool) and value == -1


def label_key(value) -> str:
    """A label's name: 3 and 3.0 are both '3' (a CSV column with blank cells is read as floats)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _keys(values, multi):
    return {label_key(v) for value in values for v in (value if multi else [value])}


def _infer_problem_type(values, feature):
    if any(isinstance(v, (list, tuple)) for v in values):
        return MULTI
    is_float = isinstance(feature, Value) and feature.dtype.startswith("float")
    if is_float and any(not float(v).is_integer() for v in values):
        return REGRESSION
    return SINGLE


def _check_types(values, raw, column):
    """A label is a string or a number, or a list of them (multi-label); anything else (a mapping, a nested
    list) would silently become a label named after its printed form."""
    def scalar(v):
        return isinstance(v, (str, int, float, bool))
    for split, vs in values.items():
        bad = next((v for v in vs if not (scalar(v) or isinstance(v, (list, tuple)) and all(map(scalar, v)))), None)
        if bad is not None:
            raise UserError(f"{raw.sources[split]}: column '{column}' holds {type(bad).__name__} values such as "
                            f"{bad!r}; labels must be strings or numbers (a list of them for multi-label): "
                            f"fix the column or choose another with --label_column_name")


def _check_numeric(values, raw, column):
    for split, vs in values.items():
        bad = [v for v in vs if not isinstance(v, (int, float))]
        if bad:
            raise UserError(f"{raw.sources[split]}: column '{column}' must hold numbers for regression, "
                            f"found {bad[0]!r}")


def _ordered(keys):
    """Numeric order when every label is a number (so '10' follows '9'), else alphabetical."""
    def number(k):
        try:
            return float(k)
        except ValueError:
            return None
    if all(number(k) is not None for k in keys):
        return sorted(keys, key=number)
    return sorted(keys)


def _show(labels, limit=5):
    shown = ", ".join(repr(v) for v in labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")
