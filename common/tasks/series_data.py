"""Time series for classification: loading, checks, one length, scaling, model inputs, augmentation and
prediction files. The model (PatchTST: config, factory, pre-training) is in common.tasks.series_model.

Data come as
- `--dataset_name ucr/NAME`: a UCR/UEA archive set read by aeon (the sets in aeon's wheel work offline);
- `.ts` files (the UCR/UEA format, read by aeon);
- csv/json/jsonl/parquet files, one row per series: a list-valued column (`--series_column_name`, a list
  of lists for several channels, one inner list per channel), or else one numeric column per time step.

Every series becomes an array of shape (channels, time). Then, in this order:
- Trailing missing values (NaN, blank cells) mark the end of a shorter series and are dropped; any other
  missing value stops the run with the row and column to fix; nothing is filled in silently.
- Variable length: each series is resampled (linear interpolation) to `context_length`, by default the
  longest training series; PatchTST has no attention mask over patches, so resampling, not padding.
- Scaling (`--scaling`): each channel of each series z-normalised on its own (`series`: the model sees shape,
  not level or amplitude), or every series with each channel's mean and std over the training series
  (`dataset`: amplitude is kept, which tells e.g. standing from running; the statistics are saved in the
  model's config as `channel_means`/`channel_stds`). The model's own scaler is off.
"""
import json
import logging
from dataclasses import dataclass, field
from typing import Optional

import datasets
import numpy as np
import torch

from common import args, artifacts, data, metrics, reports
from common.data import TEST, TRAIN, RawData
from common.errors import UserError
from common.tasks import classification
from common.techniques import augment

logger = logging.getLogger(__name__)

UCR_PREFIX = "ucr/"
SERIES = "series"  # the column every loader produces: a list per channel


@dataclass
class SeriesArguments(args.DataArguments):
    series_column_name: Optional[str] = field(
        default=None, metadata={"help": "List-valued column holding each series (a list per channel for "
                                        "several channels). Default: 'series' if present, else every numeric "
                                        "column but the label and 'id' is one time step, in file order."})
    context_length: Optional[int] = field(
        default=None, metadata={"help": "Series are resampled to this length. Default: the longest training "
                                        "series, or the pre-trained checkpoint's length."})
    patch_length: Optional[int] = field(default=None, metadata={"help": "Default: from the series length."})
    patch_stride: Optional[int] = field(default=None, metadata={"help": "Default: half the patch length."})
    pooling: str = field(default="max", metadata={"help": "How patch embeddings become one vector per channel.",
                                                  "choices": ["mean", "max"]})
    scaling: str = field(default="dataset", metadata={
        "help": "series: z-normalise each channel of each series on its own (shape only); dataset: by each channel's "
                "mean and std over the training series (keeps amplitude). A checkpoint keeps its own.",
        "choices": ["series", "dataset"]})
    differences: bool = field(default=False, metadata={
        "help": "Also give the model each channel's first difference (step-to-step change) as a channel of its own."})
    position_encoding: str = field(default="sincos", metadata={
        "help": "Where a patch lies: sincos (PatchTST's fixed encoding), learned, or none (the patches are a set: "
                "a pattern counts the same wherever it occurs).", "choices": ["sincos", "learned", "none"]})
    channel_attention: Optional[bool] = field(
        default=None, metadata={"help": "Channels also attend to each other in every layer, besides time. Default: "
                                        "on when the series have several channels (false: each channel on its own)."})
    # The shape of a new backbone; a checkpoint given by --model_name_or_path brings its own.
    d_model: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    ffn_dim: int = 64
    model_dropout: float = field(default=0.1, metadata={"help": "Attention, feed-forward and head dropout of a "
                                                                "new backbone (--dropout overrides any model's)."})
    mask_ratio: float = field(default=0.4, metadata={"help": "Pre-training: share of patches masked."})
    torch_threads: Optional[int] = field(
        default=1, metadata={"help": "CPU threads for torch. PatchTST's matrices are small here: one thread does "
                                     "the work, and does not stall when the cores are shared (measured: 2 threads "
                                     "ran many times slower on a busy 2-core machine). 0: torch's default."})


# ---------------------------------------------------------------- loading


def load(cfg, labelled=True) -> RawData:
    """Every split as rows of `series` (channels x time lists) + the label column (+ id when given).
    labelled=False: labels are not needed (pre-training)."""
    label = cfg.data.label_column_name
    raw = data.load(cfg, named=_load_ucr, readers={".ts": lambda path, flag: _read_ts(path, flag, label)})
    for split, ds in list(raw.splits.items()):
        column = cfg.data.series_column_name or (SERIES if SERIES in ds.column_names else None)
        raw.splits[split] = _to_series_rows(ds, column, label, raw.sources[split])
    if labelled:
        raw.require_columns({label: "label_column_name"}, optional_in_test=[label])
    return raw


def _load_ucr(data_args) -> Optional[RawData]:
    name = data_args.dataset_name or ""
    if not name.lower().startswith(UCR_PREFIX):
        return None  # any other name is a Hub dataset
    from aeon.datasets import load_classification
    splits, sources = datasets.DatasetDict(), {}
    for split in (TRAIN, TEST):
        try:
            X, y = load_classification(name[len(UCR_PREFIX):], split=split)
        except Exception as err:  # unknown name, or not in the wheel and no network
            raise UserError(f"--dataset_name {name}: aeon could not load it ({str(err).splitlines()[0]}); offline, "
                            f"only the sets shipped in aeon's wheel load (e.g. ucr/GunPoint, ucr/BasicMotions)") from None
        splits[split] = _rows(X, y, data_args.label_column_name)
        sources[split] = f"{name} ({split} split, from aeon)"
    return RawData(splits, sources)


def _read_ts(path, flag, label) -> datasets.Dataset:
    from aeon.datasets import load_from_ts_file
    try:
        X, y = load_from_ts_file(path)
    except Exception as err:
        raise UserError(f"--{flag} {path}: could not be read as a .ts file: {str(err).splitlines()[0]}") from None
    return _rows(X, y if y is not None and len(y) else None, label)


def _rows(X, y, label) -> datasets.Dataset:
    columns = {SERIES: [np.asarray(x, dtype=np.float64).tolist() for x in X]}
    if y is not None:
        columns[label] = [str(v) for v in y]
    return datasets.Dataset.from_dict(columns)


def _to_series_rows(ds, column, label, source) -> datasets.Dataset:
    keep = [c for c in (label, "id") if c in ds.column_names]
    if column is not None:
        if column not in ds.column_names:
            raise UserError(f"{source}: no column '{column}' (set by --series_column_name); columns there: "
                            f"{', '.join(ds.column_names)}")
        values = [_parse_cell(v, source, i, column) for i, v in enumerate(ds[column])]
    else:  # one column per time step
        steps = [c for c in ds.column_names if c not in keep]
        not_numeric = [c for c in steps if getattr(ds.features[c], "dtype", "") not in _NUMERIC]
        if not steps or not_numeric:
            raise UserError(f"{source}: column '{(not_numeric or ['(none)'])[0]}' is not a number per time step; "
                            f"name the list-valued series column with --series_column_name, or keep only the label, "
                            f"'id' and one numeric column per time step")
        table = ds.select_columns(steps).to_pandas().to_numpy(dtype=np.float64)  # blank cells: NaN
        values = [[row.tolist()] for row in table]
    rows = {SERIES: values, **{c: ds[c] for c in keep}}
    return datasets.Dataset.from_dict(rows)


_NUMERIC = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "float16", "float32", "float64", "double"}


def _parse_cell(value, source, row, column):
    if isinstance(value, str):  # csv holds lists as text: "[1, 2, 3]" or "[[1, 2], [3, 4]]"
        try:
            value = json.loads(value.replace("nan", "NaN"))
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, (list, tuple)) or not value:
        raise UserError(f"{source}: data row {row + 1} of column '{column}' is not a list of numbers (or a list per "
                        f"channel); got {str(value)[:40]!r}")
    return [[np.nan if v is None else v for v in channel] for channel in value] \
        if isinstance(value[0], (list, tuple)) else [[np.nan if v is None else v for v in value]]


# ---------------------------------------------------------------- checks and arrays


def to_arrays(raw, series_column=None) -> dict:
    """split -> list of float arrays (channels, time), checked: no missing values inside a series, the same
    channel count in every series of every split (the training data's). series_column: the
    --series_column_name the rows came from, for the errors (default: the `series` column)."""
    arrays = {split: [_checked(np.asarray(v, dtype=np.float64), raw.sources[split], i) for i, v in enumerate(ds[SERIES])]
              for split, ds in raw.splits.items()}
    expected = where = None
    for split, values in arrays.items():
        counts = sorted({len(v) for v in values})
        if len(counts) > 1:
            raise UserError(f"{raw.sources[split]}: series have {counts[0]} to {counts[-1]} channels; every series "
                            f"needs the same channels, in the same order")
        if expected is None:
            expected, where = counts[0], f"{raw.sources[split]} ({split})"
        elif counts[0] != expected:
            raise UserError(f"{raw.sources[split]}: series have {counts[0]} channel(s) (column "
                            f"'{series_column or SERIES}'), {where} has {expected}; give every split the same "
                            f"channels, in the same order")
    return arrays


def _checked(series, source, row):
    if series.ndim != 2 or series.shape[1] == 0:
        raise UserError(f"{source}: data row {row + 1}: a series must be a list of numbers, or a list per channel "
                        f"of equal length")
    observed = ~np.isnan(series).all(axis=0)
    end = len(observed) - int(np.argmax(observed[::-1])) if observed.any() else 0
    series = series[:, :end]  # trailing missing values: a shorter series
    if end < 2:
        raise UserError(f"{source}: data row {row + 1}: the series has fewer than 2 values")
    bad = np.argwhere(~np.isfinite(series))
    if len(bad):
        channel, step = bad[0]
        raise UserError(f"{source}: data row {row + 1} has a missing or infinite value at time step {step + 1} of "
                        f"channel {channel + 1}; fill it (e.g. interpolate) or drop the row: values are never "
                        f"filled in silently")
    return series


def prepare(series, length, means=None, stds=None, differences=False) -> np.ndarray:
    """(channels, time) -> (length, channels): resampled to `length`, with each channel's first difference added
    as channels of their own when `differences`, each channel z-normalised (by its own mean and std, or by the
    given per-channel `means` and `stds`)."""
    series = expand(series, length, differences)
    if means is None:
        means, stds = series.mean(axis=1), series.std(axis=1)
    means, stds = np.asarray(means)[:, None], np.asarray(stds)[:, None]
    series = (series - means) / np.where(stds > 1e-8, stds, 1.0)
    return series.T.astype(np.float32)


def expand(series, length, differences=False) -> np.ndarray:
    """(channels, time) resampled to `length` (linear interpolation); `differences` appends each channel's step
    to step change (the first step's is 0), so the model also sees slopes, which are level-free."""
    if series.shape[1] != length:
        old, new = np.linspace(0, 1, series.shape[1]), np.linspace(0, 1, length)
        series = np.stack([np.interp(new, old, channel) for channel in series])
    if differences:
        series = np.concatenate([series, np.diff(series, axis=1, prepend=series[:, :1])])
    return series


def prepare_for(config, series) -> np.ndarray:
    """A (channels, time) series as the model `config` was trained on it: its length, differences and scaling."""
    return prepare(series, config.context_length, getattr(config, "channel_means", None),
                   getattr(config, "channel_stds", None), getattr(config, "differences", False))


def features(arrays, config, label_set=None, raw=None, label_column=None) -> dict:
    """split -> list of model inputs {past_values, target_values (when labelled)}, prepared for `config`."""
    out = {}
    for split, values in arrays.items():
        labelled = label_set is not None and label_column in raw.splits[split].column_names
        labels = raw.splits[split][label_column] if labelled else None
        if labels is not None and not all(label_set.is_labelled(v) for v in labels):
            labels = None  # a test split without gold labels
        out[split] = []
        for i, series in enumerate(values):
            inputs = {"past_values": prepare_for(config, series)}
            if labels is not None:
                inputs["target_values"] = label_set.encode(labels[i])
            out[split].append(inputs)
    return out


def collate(rows):
    batch = {"past_values": torch.from_numpy(np.stack([r["past_values"] for r in rows]))}
    if "target_values" in rows[0]:
        batch["target_values"] = torch.tensor([r["target_values"] for r in rows], dtype=torch.long)
    return batch


# ---------------------------------------------------------------- outputs


def prediction_writer(label_set, label_column):
    """<split>_predictions.jsonl (predictions.jsonl for test): classification's rows without an input (id,
    predicted_label, probabilities, label); for labelled splits the confusion matrix and examples.png."""
    def write(split, output, raw_split, output_dir):
        scores = metrics.scores_from_logits(output.predictions, label_set.problem_type)
        rows = classification.prediction_rows(split, scores, raw_split, label_set, [], label_column)
        artifacts.write_jsonl(artifacts.split_file(output_dir, split, artifacts.PREDICTIONS), rows)
        if all("label" in row for row in rows):  # plots need gold labels
            predicted = np.argmax(scores, axis=-1)
            classification.confusion_matrix_plot(output_dir, split, output.label_ids, predicted, label_set.names)
            reports.task_plot(output_dir, split, "examples", lambda figure: draw_series_examples(
                figure, raw_split[SERIES], [r["label"] for r in rows], [r["predicted_label"] for r in rows],
                label_set.names), size=(9, 1.6 + 1.6 * min(len(label_set.names), 8)))
    return write


def draw_series_examples(figure, series, gold, predicted, names, per_class=3):
    """A few series of each gold class (one row of panels per class; every channel drawn), titled with the
    predicted label: green when right, red when wrong."""
    shown = [[i for i, g in enumerate(gold) if g == name][:per_class] for name in names]
    shown = [(name, rows) for name, rows in zip(names, shown) if rows][:8]  # beyond 8 classes: the first 8
    grid = figure.subplots(len(shown), per_class, squeeze=False, sharex=True)
    for (name, rows), axes_row in zip(shown, grid):
        axes_row[0].set_ylabel(f"gold: {name}", fontsize=8)
        for axes, i in zip(axes_row, rows + [None] * (per_class - len(rows))):
            if i is None:
                axes.axis("off")
                continue
            for channel in np.atleast_2d(np.asarray(series[i], dtype=float)):
                axes.plot(channel, linewidth=0.8)
            axes.set_title(f"predicted: {predicted[i]}", fontsize=8,
                           color="tab:green" if predicted[i] == name else "tab:red")
            axes.tick_params(labelsize=6)
    figure.suptitle(f"examples per class ({len(gold)} series)")


# ---------------------------------------------------------------- --augment: time-series operations ((channels, time) arrays)


def jitter(series, p, rng):
    return series + rng.normal(0.0, 1.0, series.shape) * p * series.std(axis=1, keepdims=True)


def scale(series, p, rng, knots=5):
    """Magnitude warping: per channel, N(1, p) at `knots` evenly spaced points, linear in between."""
    steps = np.linspace(0, 1, series.shape[1])
    curves = [np.interp(steps, np.linspace(0, 1, knots), rng.normal(1.0, p, knots)) for _ in series]
    return series * np.stack(curves)


def slice_window(series, p, rng):
    length = series.shape[1]
    window = max(2, round((1 - p) * length))
    start = rng.integers(length - window + 1)
    old, new = np.linspace(0, 1, window), np.linspace(0, 1, length)
    return np.stack([np.interp(new, old, channel[start:start + window]) for channel in series])


def training_series(raw, arrays, cfg):
    """--augment jitter,scale,slice (common.techniques.augment): arrays (split -> (channels, time) arrays from to_arrays) and the raw training rows
    (whose labels features() reads) extended together; returns both."""
    ops = augment.checked_ops(cfg, augment.SERIES_OPS, "time series")
    if not ops:
        return raw, arrays
    p, functions = cfg.data.augment_probability, {"jitter": jitter, "scale": scale, "slice": slice_window}
    copies = []

    def alter(i, row, op, rng):
        copy = functions[op](arrays[TRAIN][i], p, rng)
        copies.append(copy)
        row[SERIES] = copy.tolist()
        return row
    raw = augment.extend(raw, cfg, ops, alter)
    return raw, {**arrays, TRAIN: arrays[TRAIN] + copies}
