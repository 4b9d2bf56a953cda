"""Discriminative learning rates (--head_learning_rate, --layerwise_lr_decay) as optimizer parameter groups.

The optimizer Trainer builds from TrainingArguments (its class, betas, fused kernels, weight-decay split) is kept;
only its parameter groups are split further, each with its own learning rate, which the scheduler then warms up
and decays as usual. Layer-wise decay (Howard & Ruder 2018; Clark et al. 2020): the top encoder layer trains at
--learning_rate, each layer below at decay times the one above, the embeddings lowest; the head (the weights
outside the pre-trained encoder) at --head_learning_rate, default --learning_rate.
"""
import re

from common.errors import UserError

LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


def check_flags(run):
    if run.layerwise_lr_decay is not None and not 0 < run.layerwise_lr_decay <= 1:
        raise UserError(f"--layerwise_lr_decay {run.layerwise_lr_decay}: give a factor in (0, 1], e.g. 0.8")
    if run.head_learning_rate is not None and run.head_learning_rate <= 0:
        raise UserError(f"--head_learning_rate {run.head_learning_rate}: give a positive learning rate")


def wanted(run) -> bool:
    return run.head_learning_rate is not None or run.layerwise_lr_decay is not None


def learning_rate_of(model, base_lr, head_lr=None, decay=None) -> dict:
    """Parameter name -> learning rate, for every parameter that trains."""
    hf_model = model.get_base_model() if hasattr(model, "peft_config") else model
    encoder = hf_model.base_model
    if encoder is hf_model:
        raise UserError("--head_learning_rate / --layerwise_lr_decay need a model with a task head on an encoder")
    encoder_params = {id(p) for p in encoder.parameters()}
    names = [name for name, p in model.named_parameters() if p.requires_grad and id(p) in encoder_params]
    layers = [int(m.group(1)) for m in map(LAYER_INDEX.search, names) if m]
    top = max(layers, default=-1) + 1  # depth of the top layer: embeddings 0, layer i at i + 1

    def encoder_depth(name):
        match = LAYER_INDEX.search(name)
        if match:
            return int(match.group(1)) + 1
        return 0 if "embed" in name else top  # pooler, final norm: on top of the layers

    rates = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) not in encoder_params:
            rates[name] = head_lr if head_lr is not None else base_lr
        else:
            rates[name] = base_lr * (decay ** (top - encoder_depth(name)) if decay is not None else 1.0)
    return rates


def split_groups(optimizer, model, args, run):
    """The same optimizer (class, settings, no state yet), its parameter groups split by learning rate."""
    rates = learning_rate_of(model, args.learning_rate, run.head_learning_rate, run.layerwise_lr_decay)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            lr = rates[names[id(param)]]
            key = (group["weight_decay"], lr)
            groups.setdefault(key, {**{k: v for k, v in group.items() if k != "params"}, "lr": lr,
                                    "params": []})["params"].append(param)
    optimizer.param_groups = []
    for group in groups.values():
        optimizer.add_param_group(group)
    return optimizer
