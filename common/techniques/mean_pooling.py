"""Read a sequence classifier's encoder by the mean of its token outputs (--pooling mean).

BERT's classifier reads the pooler's dense + tanh over the [CLS] token. all-MiniLM-L6-v2 was trained for
mean-pooled sentence embeddings, its [CLS] never for a classifier: a logistic regression on its frozen outputs
reads sentiment at 77.6 from the mean against 71.6 from [CLS] (studies/frozen_heads.py). The pooler's dense +
tanh stay; only what they read changes, the mean over the tokens the attention mask keeps.
"""
import torch
from torch import nn

from common.errors import UserError


class MeanPooler(nn.Module):
    """BERT's pooler (same weights, same names) over the masked mean of the tokens instead of [CLS]."""

    def __init__(self, pooler):
        super().__init__()
        self.dense, self.activation = pooler.dense, pooler.activation
        self.attention_mask = None  # set by the encoder's pre-hook before each forward

    def forward(self, hidden_states):
        mask = self.attention_mask
        if mask is None or mask.dim() != 2:
            mask = torch.ones(hidden_states.shape[:2], device=hidden_states.device)
        weights = mask.unsqueeze(-1).to(hidden_states.dtype)
        mean = (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.activation(self.dense(mean))


def install(model):
    """Swap the encoder's pooler for a MeanPooler and hand it each forward's attention mask."""
    base = model.base_model
    if getattr(base, "pooler", None) is None or not hasattr(base.pooler, "dense"):
        raise UserError("--pooling mean: this model's head reads no BERT-style pooler (only sequence "
                        "classification with a BERT-style encoder does); drop the flag")
    if isinstance(base.pooler, MeanPooler):
        return model
    pooler = MeanPooler(base.pooler)
    base.pooler = pooler

    def remember_mask(module, args, kwargs):
        pooler.attention_mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    base.register_forward_pre_hook(remember_mask, with_kwargs=True)
    return model
