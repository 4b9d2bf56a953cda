"""--cache_features: a frozen encoder runs once per distinct input; the head then trains on its cached outputs.

With --freeze_encoder every epoch pays a full encoder forward pass for the same outputs. Here the encoder's
forward is replaced (on the instance, so the saved model and its state dict are unchanged) by a lookup keyed by
each row's tokens: a row seen before gets its stored outputs, the others go through the real encoder in one
batch and are stored. The model's own head code then runs unchanged on those outputs, so the result is the
frozen-head model, trained in a fraction of the time and saved as a normal pipeline()-loadable model.

Padding is not cached: per-token outputs at padded positions come back as zeros. Heads that ignore padding
(pooled classification, token classification with -100 labels) train exactly as with the live encoder.
Transformers' QA heads do not: their start/end softmax runs over padded positions too, so a QA head trains on
slightly different logits there (the recipe's post-processing never picks a padded position).
"""
import torch
from torch import nn

from common.errors import UserError


def keep_in_eval_mode(encoder: nn.Module):
    """A frozen encoder is a fixed feature extractor: no dropout in it, also while the head trains. (Dropout
    on features that never learn is only noise, and it would make cached outputs differ from live ones.)"""
    encoder.register_forward_pre_hook(_to_eval_mode)


def _to_eval_mode(module, _inputs):
    if module.training:
        module.eval()  # returns the module: not returned here, as a pre-hook's result replaces the inputs


def install(model: nn.Module):
    """Route model.base_model's forward through a cache. Needs a frozen encoder (its outputs never change)."""
    encoder = model.base_model
    if encoder is model or any(p.requires_grad for p in encoder.parameters()):
        raise UserError("--cache_features needs --freeze_encoder: only a frozen encoder gives the same outputs "
                        "every epoch")
    encoder.forward = CachedForward(encoder.forward)
    return model


class CachedForward:
    """The encoder's forward with a cache of its outputs, one entry per row (padding left out of the key)."""

    def __init__(self, forward):
        self.forward, self.cache = forward, {}
        self.output_class, self.per_token = None, set()

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, **kwargs):
        if input_ids is None or position_ids is not None:  # inputs_embeds or custom positions: not cached
            return self.forward(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                position_ids=position_ids, **kwargs)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        keys = [self._key(input_ids[i], mask[i], None if token_type_ids is None else token_type_ids[i])
                for i in range(len(input_ids))]
        missing = {}  # key -> first row holding it
        for i, key in enumerate(keys):
            if key not in self.cache and key not in missing:
                missing[key] = i
        if missing:
            self._fill(missing, input_ids, mask, token_type_ids)
        return self._assemble(keys, mask, input_ids.device)

    @staticmethod
    def _key(ids, mask, types):
        real = mask.bool()
        return tuple(ids[real].tolist()), None if types is None else tuple(types[real].tolist())

    def _fill(self, missing, input_ids, mask, token_type_ids):
        rows = list(missing.values())
        index = torch.tensor(rows, device=input_ids.device)
        with torch.no_grad():
            outputs = self.forward(input_ids[index], attention_mask=mask[index], return_dict=True,
                                   token_type_ids=None if token_type_ids is None else token_type_ids[index])
        self.output_class = type(outputs)
        fields = {name: value for name, value in outputs.items() if torch.is_tensor(value) and len(value) == len(rows)}
        self.per_token = {name for name, value in fields.items()
                          if value.dim() >= 3 and value.shape[1] == input_ids.shape[1]}
        for n, (key, i) in enumerate(missing.items()):
            real = mask[i].bool()
            self.cache[key] = {name: (value[n][real] if name in self.per_token else value[n]).detach().cpu()
                               for name, value in fields.items()}

    def _assemble(self, keys, mask, device):
        """The batch's outputs from the cache, per-token outputs put back at the unpadded positions."""
        batch = {}
        for name in self.cache[keys[0]]:
            rows = [self.cache[key][name] for key in keys]
            if name in self.per_token:
                out = rows[0].new_zeros((len(keys), mask.shape[1], *rows[0].shape[1:]))
                real = mask.bool().cpu()
                for i, row in enumerate(rows):
                    out[i][real[i]] = row
            else:
                out = torch.stack(rows)
            batch[name] = out.to(device)
        return self.output_class(**batch)
