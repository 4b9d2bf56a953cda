"""Raw data: a Hub dataset or local csv/tsv/json/jsonl/parquet files, checked before any work is done.

A `.json` file in the official SQuAD shape (`data[].paragraphs[].qas[]`, v1.1 or v2.0) is read as one
row per question: id, title, context, question, answers {text: [...], answer_start: [...]}, the
columns of the Hub's `squad` and `squad_v2`. A `.json` document with flat rows under a `data` key
(`{"version": ..., "data": [{...}, ...]}`, what HF's examples read with `field="data"`) is read as those rows.
In both, a repeated `id` is renamed (`<id>#2`, ...) with a warning: predictions.json is keyed by id.

Splits are named `train`, one name per evaluation set (`validation` when there is one, the file
stems or Hub split names when there are several) and `test`, in that order.
"""
import codecs
import collections
import csv
import json
import logging
import os
import random
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import datasets
from datasets import DatasetDict

from common.errors import UserError

FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
CONLL_EXTENSIONS = (".conll", ".txt")  # read only by recipes that pass `conll` (word-level tagging)
TRAIN, TEST = "train", "test"
FOLD = "fold_"  # fold_0, fold_1, ...: train's rows in --hpo_folds parts, scored only by a search's trials

logger = logging.getLogger(__name__)


@dataclass
class RawData:
    splits: DatasetDict
    sources: dict = field(default_factory=dict)  # split -> where it came from, for error messages

    @property
    def eval_names(self) -> list:
        return eval_names(self.splits)

    def require_columns(self, columns: dict, optional_in_test=()):
        """columns: {column name: the flag that names it}. The test split may lack optional_in_test."""
        for split, ds in self.splits.items():
            for column, flag in columns.items():
                if column in ds.column_names or (split == TEST and column in optional_in_test):
                    continue
                raise UserError(f"{self.sources[split]}: no column '{column}' (set by --{flag}); "
                                f"columns there: {', '.join(ds.column_names)}")

    def require_texts(self, columns):
        """Every cell of these columns must be a string: a None or number would crash deep inside the tokenizer."""
        for split, ds in self.splits.items():
            for column in columns:
                bad = next((i for i, v in enumerate(ds[column]) if not isinstance(v, str)), None)
                if bad is not None:
                    raise UserError(f"{self.sources[split]}: data row {bad + 1} of column '{column}' is "
                                    f"{ds[column][bad]!r}, not text; fill or drop such rows")


def eval_names(splits) -> list:
    """The evaluation splits of a (raw or encoded) DatasetDict, in order: all but train, test and the folds."""
    return [name for name in splits if name not in (TRAIN, TEST) and not name.startswith(FOLD)]


def fold_names(splits) -> list:
    """The --hpo_folds splits, in order (none without the flag)."""
    return [name for name in splits if name.startswith(FOLD)]


DOCUMENT = "document"  # a CoNLL file's document of each sentence, where it has -DOCSTART- lines


class ConllColumns(NamedTuple):
    """How a CoNLL column file becomes a Dataset: the column names to give words and tags, and which
    whitespace-separated field holds the tag (CoNLL-2003's eng.train: word POS chunk NER, so -1)."""
    words: str
    tags: str
    tag_index: int = -1


# held_out_by for rows in document order (NER sentences): held-out rows and folds take runs of consecutive
# rows, so a document's names rarely fall on both sides and a held-out sentence keeps its neighbours.
CONSECUTIVE_ROWS = "runs of consecutive rows"


def run_length(rows: int) -> int:
    """Rows per run for CONSECUTIVE_ROWS: 100 (a few news documents), fewer on small data so there are 20 runs."""
    return max(1, min(100, rows // 20))


def load(cfg, conll: Optional[ConllColumns] = None, named=None, readers=None, held_out_by=None) -> RawData:
    """Load the splits the run needs (cfg: common.args.Config), apply sample limits, check emptiness.
    conll: also read .conll/.txt files as CoNLL column files (word-level tagging recipes).
    named(data_args) -> RawData or None: a recipe's own datasets by name, tried before the Hub (time series:
    ucr/NAME from aeon). readers: {extension: read(path, flag) -> Dataset} for formats only that recipe reads.
    held_out_by: the column whose rows --validation_split_percentage keeps together when --validation_split_by
    is not given (QA: context)."""
    data, training = cfg.data, cfg.training
    for flag in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        limit = getattr(data, flag)
        if limit is not None and limit <= 0:
            raise UserError(f"--{flag} must be a positive number of examples, got {limit}")
    percentage = data.validation_split_percentage
    if percentage is not None and not 0 < percentage < 100:
        raise UserError(f"--validation_split_percentage must be between 1 and 99, got {percentage}")
    folds = cfg.run.hpo_folds
    if data.validation_split_by and not (percentage or folds):
        raise UserError(f"--validation_split_by {data.validation_split_by} chooses how "
                        "--validation_split_percentage (or --hpo_folds) holds out rows: give that too")
    with training.main_process_first(desc="loading data"):
        raw = (named and named(data)) or (
            _load_hub(data, cfg.model.token) if data.dataset_name else _load_files(data, conll, readers))
    _remove(raw, data)
    if percentage and raw.eval_names:
        raise UserError(f"--validation_split_percentage {percentage} holds out part of train, but evaluation data "
                        f"is given ({raw.sources[raw.eval_names[0]]}); drop one of them "
                        f"(--validation_file \"\" clears a config file's)")
    column = held_out_by if data.validation_split_by is None else data.validation_split_by
    flag = f"--validation_split_percentage {percentage}" if percentage else f"--hpo_folds {folds}"
    cause = f"--validation_split_by {column}" if column == data.validation_split_by else (
        f"{flag} holds out whole groups of '{column}' here")
    if percentage and TRAIN in raw.splits:
        raw.splits[TRAIN], raw.splits["validation"] = _hold_out(raw, percentage, column, cause, training.seed)
        by = f" (whole groups of {column})" if column else ""
        raw.sources["validation"] = f"{percentage}% of {raw.sources[TRAIN]}{by}"
        raw.splits = DatasetDict({k: raw.splits[k] for k in [TRAIN, "validation", TEST] if k in raw.splits})
    _check_needed_splits(raw, training, folds)
    if data.shuffle_train_dataset and TRAIN in raw.splits:  # before the limit, so it takes a random sample
        raw.splits[TRAIN] = raw.splits[TRAIN].shuffle(seed=data.shuffle_seed)
    limits = {TRAIN: data.max_train_samples, TEST: data.max_predict_samples}
    for name, ds in raw.splits.items():
        limit = limits.get(name, data.max_eval_samples)
        if limit is not None and limit < len(ds):
            raw.splits[name] = ds.select(range(limit))
    if folds and TRAIN in raw.splits:  # after the limit: the folds are the rows a run would train on
        for i, rows in enumerate(_folds(raw, folds, column, cause, training.seed)):
            raw.splits[f"{FOLD}{i}"] = raw.splits[TRAIN].select(rows)
            raw.sources[f"{FOLD}{i}"] = f"fold {i + 1} of {folds} of {raw.sources[TRAIN]}"
    return raw


def _hold_out(raw: RawData, percentage: int, column: Optional[str], cause: str, seed: int):
    """Train's rows split into (kept, held out), about percentage% held out. With a column, rows sharing its
    value fall on one side together: a random row split of SQuAD would score questions on passages the
    trials trained on, and so favour settings that memorise."""
    train = raw.splits[TRAIN]
    if not column:
        parts = train.train_test_split(test_size=percentage / 100, seed=seed)
        return parts["train"], parts["test"]
    values, groups = _groups(raw, column, cause, seed)
    sizes = collections.Counter(values)
    held, count = set(), 0
    for group in groups[:-1]:  # at least one group stays for training
        if count >= len(values) * percentage / 100:
            break
        held.add(group)
        count += sizes[group]
    if not held:
        raise UserError(f"{cause}, but {raw.sources[TRAIN]} has {len(groups)} distinct value(s) there: too few "
                        f"to hold out {percentage}% in whole groups (--validation_split_by '' splits rows at random)")
    kept = [i for i, value in enumerate(values) if value not in held]
    return train.select(kept), train.select([i for i, value in enumerate(values) if value in held])


def _folds(raw: RawData, count: int, column: Optional[str], cause: str, seed: int) -> list:
    """Train's row indices in `count` folds of about equal size; with a column, rows sharing its value fall in
    one fold together (as in _hold_out), each group going to the smallest fold so far."""
    if not column:
        rows = list(range(len(raw.splits[TRAIN])))
        if len(rows) < count:
            raise UserError(f"--hpo_folds {count}: {raw.sources[TRAIN]} has {len(rows)} training row(s); give "
                            f"fewer folds")
        random.Random(seed).shuffle(rows)
        return [sorted(rows[i::count]) for i in range(count)]
    values, groups = _groups(raw, column, cause, seed)
    if len(groups) < count:
        raise UserError(f"{cause}, but {raw.sources[TRAIN]} has {len(groups)} distinct value(s) there: too few "
                        f"for {count} folds (--validation_split_by '' splits rows at random)")
    sizes, fold_of, filled = collections.Counter(values), {}, [0] * count
    for group in groups:
        fold_of[group] = smallest = filled.index(min(filled))
        filled[smallest] += sizes[group]
    folds = [[] for _ in range(count)]
    for i, value in enumerate(values):
        folds[fold_of[value]].append(i)
    return folds


def _groups(raw: RawData, column: str, cause: str, seed: int):
    """Train's values of the column (as strings) and its distinct values, shuffled with the run's seed.
    CONSECUTIVE_ROWS groups rows by position (see run_length)."""
    train = raw.splits[TRAIN]
    if column == CONSECUTIVE_ROWS:
        run = run_length(len(train))
        values = [str(i // run) for i in range(len(train))]
    elif column not in train.column_names:
        raise UserError(f"{cause}, but {raw.sources[TRAIN]} has no column '{column}' (columns: "
                        f"{', '.join(train.column_names)}): name one with --validation_split_by, or '' for random rows")
    else:
        values = [str(value) for value in train[column]]
    groups = list(dict.fromkeys(values))  # in order of first appearance, then shuffled
    random.Random(seed).shuffle(groups)
    return values, groups


def _remove(raw: RawData, data):
    """--remove_splits and --remove_columns: as if those splits or columns were not in the data."""
    for split in filter(None, (data.remove_splits or "").split(",")):
        if split not in raw.splits:
            raise UserError(f"--remove_splits {data.remove_splits}: no split '{split}'; splits: {', '.join(raw.splits)}")
        del raw.splits[split]
    for column in filter(None, (data.remove_columns or "").split(",")):
        for split, ds in raw.splits.items():
            if column not in ds.column_names:
                raise UserError(f"--remove_columns {data.remove_columns}: {raw.sources[split]} has no column "
                                f"'{column}'; columns there: {', '.join(ds.column_names)}")
            raw.splits[split] = ds.remove_columns(column)


def tokenize(raw: RawData, encode, cfg, desc="tokenizing", with_indices=False) -> DatasetDict:
    """Batched `encode` over every split, replacing the raw columns; the main process goes first so
    the others reuse its cache under `accelerate launch`. with_indices: encode(batch, row_indices), for
    encoders that emit several features per example (NER and QA windows) and must say which example each
    came from."""
    with cfg.training.main_process_first(desc=desc):
        return DatasetDict({name: ds.map(encode, batched=True, remove_columns=ds.column_names,
                                         with_indices=with_indices, load_from_cache_file=not cfg.data.overwrite_cache,
                                         num_proc=cfg.data.preprocessing_num_workers, desc=f"{desc} {name}")
                            for name, ds in raw.splits.items()})


def _load_hub(data, token=None) -> RawData:
    try:
        hub = datasets.load_dataset(data.dataset_name, data.dataset_config_name, token=token)
    except Exception as err:  # network, unknown name, missing config: all surface as one line
        raise UserError(f"could not load Hub dataset --dataset_name {data.dataset_name}: "
                        f"{str(err).splitlines()[0] if str(err) else type(err).__name__}; without the Hub, "
                        f"pass local files with --train_file/--validation_file") from None
    wanted = {TRAIN: data.train_split_name, **{name: name for name in data.eval_split_names}, TEST: data.predict_split_name}
    splits = DatasetDict({ours: hub[theirs] for ours, theirs in wanted.items() if theirs in hub})
    name = data.dataset_name + (f"/{data.dataset_config_name}" if data.dataset_config_name else "")
    return RawData(splits, {ours: f"Hub dataset {name} split '{theirs}'" for ours, theirs in wanted.items()})


def _load_files(data, conll=None, readers=None) -> RawData:
    files = {}  # an empty path ("") clears a file set in a config file
    if data.train_file:
        files[TRAIN] = ("train_file", data.train_file)
    validation = [path for path in data.validation_file or [] if path]
    stems = [os.path.splitext(os.path.basename(p))[0] for p in validation]
    names = ["validation"] if len(validation) == 1 else stems
    if len(set(names)) != len(names):
        raise UserError(f"--validation_file: file names must differ to tell the reports apart: {validation}")
    files.update({name: ("validation_file", path) for name, path in zip(names, validation)})
    if data.test_file:
        files[TEST] = ("test_file", data.test_file)
    if not files:
        raise UserError("no data given: pass --train_file/--validation_file/--test_file, "
                        "or --dataset_name for a Hub dataset")
    splits = DatasetDict({name: read_file(path, flag, conll, readers) for name, (flag, path) in files.items()})
    return RawData(splits, {name: f"{path}" for name, (_, path) in files.items()})


def read_file(path: str, flag: str = "file", conll: Optional[ConllColumns] = None, readers=None) -> datasets.Dataset:
    """One local file as a Dataset; any problem becomes a one-line UserError naming the file."""
    ext = os.path.splitext(path)[1].lower()
    readable = list(FORMATS) + (list(CONLL_EXTENSIONS) if conll else []) + list(readers or {})
    if ext not in readable:
        raise UserError(f"--{flag} {path}: unsupported extension '{ext or '(none)'}'; "
                        f"use one of {', '.join(readable)}")
    if not os.path.isfile(path):
        raise UserError(f"--{flag} {path}: file not found")
    if os.path.getsize(path) == 0:
        raise UserError(f"--{flag} {path}: file is empty")
    if ext != ".parquet":
        _check_utf8(path, flag)
    if ext in (readers or {}):
        return readers[ext](path, flag)
    if ext in CONLL_EXTENSIONS:
        return read_conll(path, flag, conll)
    if ext == ".json" and (document := _read_json_document(path, flag)) is not None:
        return document
    # TSV files such as GLUE's contain bare quotes: read them verbatim.
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if ext == ".tsv" else {}
    try:
        ds = datasets.load_dataset(FORMATS[ext], data_files={"data": path}, split="data", **options)
    except Exception as err:
        cause = _root_cause(err)
        if "corresponds to no data" in str(cause):
            raise UserError(f"--{flag} {path}: file has no rows") from None
        raise UserError(f"--{flag} {path}: could not be read as {ext[1:]}: "
                        f"{str(cause).splitlines()[0] if str(cause) else type(cause).__name__}") from None
    if len(ds) == 0:
        raise UserError(f"--{flag} {path}: file has no rows")
    return ds


def read_conll(path: str, flag: str, columns: ConllColumns) -> datasets.Dataset:
    """A CoNLL column file: one word per line, its tags in further whitespace-separated fields, a blank
    line between sentences and `-DOCSTART-` lines between documents (both end a sentence; neither is one;
    a file with them gets a DOCUMENT column numbering each sentence's document from 0).
    A file with a single field per line holds words only: data to tag, without gold."""
    sentences, words, tags, width, document, documents = [], [], [], None, -1, []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if words:
                    sentences.append((words, tags))
                    documents.append(document)
                words, tags = [], []
                document += bool(fields)
                continue
            if width is None:
                width = len(fields)
                if width > 1 and not (-width <= columns.tag_index < width and columns.tag_index % width):
                    raise UserError(f"--conll_tag_index {columns.tag_index}: {path} has {width} fields per line "
                                    f"(the word first); use 1..{width - 1}, or -1 for the last")
            if len(fields) != width:
                raise UserError(f"--{flag} {path}: line {number} has {len(fields)} fields, the lines before it "
                                f"{width}; every word line needs the same columns")
            words.append(fields[0])
            if width > 1:
                tags.append(fields[columns.tag_index])
    if words:
        sentences.append((words, tags))
        documents.append(document)
    if not sentences:
        raise UserError(f"--{flag} {path}: file has no sentences")
    table = {columns.words: [w for w, _ in sentences]}
    if width > 1:
        table[columns.tags] = [t for _, t in sentences]
    if document >= 0:
        table[DOCUMENT] = [d - documents[0] for d in documents]  # from 0, also with sentences before a -DOCSTART-
    return datasets.Dataset.from_dict(table)


SQUAD_FEATURES = datasets.Features({
    "id": datasets.Value("string"), "title": datasets.Value("string"), "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": {"text": datasets.List(datasets.Value("string")), "answer_start": datasets.List(datasets.Value("int32"))},
})


def _read_json_document(path, flag):
    """The rows of a JSON document with a `data` list: an official SQuAD file, or flat rows under `data`
    (HF's field="data"). None when the file has another shape (JSON lines, a list of records...). Only a
    file that starts with '{' is parsed here: JSON lines fail fast on line 2."""
    with open(path, encoding="utf-8") as fh:
        if fh.read(1) != "{":
            return None
        fh.seek(0)
        try:
            document = json.load(fh)
        except json.JSONDecodeError:
            return None
    articles = document.get("data") if isinstance(document, dict) else None
    if not (isinstance(articles, list) and articles and all(isinstance(a, dict) for a in articles)):
        return None
    if "paragraphs" not in articles[0]:  # flat rows under `data`
        return datasets.Dataset.from_list(_unique_ids(articles, path))
    rows = []
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    # v2.0 unanswerable questions have answers [] (plausible_answers are not gold).
                    answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                    rows.append({"id": str(qa["id"]), "title": article.get("title", ""), "context": paragraph["context"],
                                 "question": qa["question"],
                                 "answers": {"text": [a["text"] for a in answers],
                                             "answer_start": [a["answer_start"] for a in answers]}})
    except (KeyError, TypeError) as err:
        raise UserError(f"--{flag} {path}: SQuAD-shaped file (data[].paragraphs[].qas[]) with a malformed entry "
                        f"near question {len(rows) + 1}: missing or wrong field {err}") from None
    if not rows:
        raise UserError(f"--{flag} {path}: file has no rows (no questions under data[].paragraphs[].qas[])")
    return datasets.Dataset.from_list(_unique_ids(rows, path), features=SQUAD_FEATURES)


def _unique_ids(rows, path):
    """In a SQuAD-format file the ids cannot be dropped to number the rows: a repeated id becomes <id>#2,
    <id>#3... (the first keeps its id), and a warning says how many, so predictions.json keeps every question."""
    if not all("id" in row for row in rows):
        return rows
    seen, renamed = collections.Counter(), []
    for row in rows:
        qid = str(row["id"])
        seen[qid] += 1
        if seen[qid] > 1:
            renamed.append(qid)
            row["id"] = f"{qid}#{seen[qid]}"
    if renamed:
        for row in rows:  # one type for the column: the renamed ids are strings
            row["id"] = str(row["id"])
        logger.warning("%s: %d questions repeat an id used before (first: %s); renamed <id>#2, <id>#3... "
                       "in predictions.json", path, len(renamed), ", ".join(sorted(set(renamed))[:5]))
    return rows


def _check_utf8(path, flag):
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise UserError(f"--{flag} {path}: not UTF-8 text (byte {offset + err.start}); "
                                f"re-save the file with UTF-8 encoding") from None
            offset += len(chunk)


def _root_cause(err):
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    return err


def _check_needed_splits(raw: RawData, training, folds=0):
    needs = [(training.do_train, TRAIN, "--train_file"), (training.do_predict, TEST, "--test_file")]
    for needed, split, flag in needs:
        if needed and split not in raw.splits:
            raise UserError(f"--do_{'train' if split == TRAIN else 'predict'} needs a {split} split: pass {flag}")
    if training.do_eval and not raw.eval_names and not folds:  # the folds are a search's evaluation data
        raise UserError("--do_eval needs evaluation data: pass --validation_file, "
                        "or --validation_split_percentage to hold out part of train")
    for name, ds in raw.splits.items():
        if len(ds) == 0:
            raise UserError(f"{raw.sources[name]}: the {name} split is empty")
