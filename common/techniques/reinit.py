"""Re-initialise the top encoder layers before fine-tuning (--reinit_top_layers N).

Zhang et al. 2021 ("Revisiting few-sample BERT fine-tuning"): the top layers of a pre-trained encoder are
specialised to its pre-training objective, and drawing them afresh (with the pooler, where the head reads
one) makes small-data fine-tuning more stable. The layers are drawn as the model's own initialisation draws
new weights (normal with the config's initializer range, zero biases, unit norms), after the run's seed is set.
"""
from torch import nn

from common.errors import UserError

LAYER_LISTS = ("layer", "layers", "h", "block", "blocks")  # the encoder's stack, by its usual names


def check_flags(model_args, do_train):
    count = model_args.reinit_top_layers
    if not count:
        return
    if count < 0:
        raise UserError(f"--reinit_top_layers {count}: give how many top encoder layers to draw afresh, e.g. 2")
    if model_args.freeze_encoder or model_args.lora:
        raise UserError(f"--reinit_top_layers with --{'lora' if model_args.lora else 'freeze_encoder'}: new layers "
                        f"must train in full; drop one of the two")
    if not do_train:
        raise UserError("--reinit_top_layers redraws pre-trained weights: it needs --do_train (drop it to "
                        "evaluate or predict with a trained model)")


def apply(model, count, pooler=None):
    """Draw the top `count` layers of the model's encoder afresh, and the module named `pooler`."""
    layers = encoder_layers(model)
    if count > len(layers):
        raise UserError(f"--reinit_top_layers {count}: the encoder has {len(layers)} layers; give at most that")
    std = getattr(model.config, "initializer_range", None) or getattr(model.config, "init_std", 0.02)
    for block in [*layers[len(layers) - count:], *([model.get_submodule(pooler)] if pooler else [])]:
        for module in block.modules():
            if isinstance(module, nn.Linear):  # as HF's _init_weights; torch's reset would use Kaiming
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif hasattr(module, "reset_parameters"):  # norms (running statistics too), attention modules
                module.reset_parameters()


def encoder_layers(model) -> nn.ModuleList:
    for name, module in model.base_model.named_modules():
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] in LAYER_LISTS:
            return module
    raise UserError("--reinit_top_layers: this model has no stack of encoder layers it can find; drop the flag")
