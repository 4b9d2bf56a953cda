"""Inference with a trained output directory, PyTorch or exported to ONNX: which task it holds, loading it,
and running encoded features through it in batches with the Trainer's output layout."""
import json
import os

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, DataCollatorWithPadding

from common import onnx_models
from common.errors import UserError

PADDING = -100  # the Trainer pads per-token logits of shorter batches with it; the task decoders expect that


def trained_config(model_dir):
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise UserError(f"{model_dir}: no config.json; give a trained output directory (the recipe's --output_dir)")
    config = AutoConfig.from_pretrained(model_dir)
    if not config.architectures:
        raise UserError(f"{model_dir}/config.json names no architecture; give a recipe's trained output directory")
    return config


def task_of(model_dir, config):
    """The PyTorch auto class of the directory's task; None for a PatchTST classifier (there is no auto class)."""
    architecture = config.architectures[0]
    if architecture == "PatchTSTForClassification":
        return None
    adapter_task = _adapter_task_type(model_dir)  # an adapter folder's config.json names the base model only
    for auto_class, (_, _, peft_task) in onnx_models.TWINS.items():
        if adapter_task == peft_task or architecture.endswith(auto_class.__name__.removeprefix("AutoModel")):
            return auto_class
    raise UserError(f"{model_dir}: a {architecture} is not supported here; supported: sequence classification "
                    f"(text classification, NLI), token classification (NER), question answering, PatchTST")


def _adapter_task_type(model_dir):
    path = os.path.join(model_dir, "adapter_config.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh).get("task_type")


def load(model_dir, auto_class, threads=None):
    """A trained output directory (a LoRA adapter directory too) or an exported one, ready for inference."""
    if onnx_models.is_exported(model_dir):
        return onnx_models.TWINS[auto_class][0].from_pretrained(model_dir, threads=threads)
    from common import modeling
    return modeling.load_trained(model_dir, auto_class).eval()


def batched_outputs(model, tokenizer, features, output_names, per_token, batch_size=32, progress=False):
    """Each output of `model` over `features` (model inputs only, in order), concatenated as numpy arrays.
    per_token: outputs have one value per token (NER, QA): batches padded with PADDING to the longest."""
    collate = DataCollatorWithPadding(tokenizer)
    width = max(len(ids) for ids in features["input_ids"])
    parts = {name: [] for name in output_names}
    batches = range(0, len(features), batch_size)
    with torch.no_grad():
        for start in tqdm(batches, desc="predicting", unit="batch", disable=not progress):
            batch = collate([features[j] for j in range(start, min(start + batch_size, len(features)))])
            out = model(**batch)
            for name in output_names:
                value = out[name].float()
                if per_token:  # same layout as the Trainer's gathered logits
                    pad = [0, 0] * (value.dim() - 2) + [0, width - value.shape[1]]
                    value = torch.nn.functional.pad(value, pad, value=PADDING)
                parts[name].append(value.numpy())
    return tuple(np.concatenate(parts[name]) for name in output_names)
