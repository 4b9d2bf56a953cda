"""The time-series model: PatchTST sized to the data (or a checkpoint's), the make_model of the recipe's
TrainerFactory (--freeze_encoder / --lora through common.modeling), and self-supervised masked-patch
pre-training of a backbone on the training series. The data side is common.tasks.series_data.

This project's own settings travel in the model's config.json beside PatchTST's: `differences` (each
channel's first difference added as a channel), `position_free` (position encoding zeroed) and, under
--scaling dataset, `channel_means`/`channel_stds`; series_data.prepare_for reads them back.
"""
import copy
import dataclasses

import numpy as np
import torch
from transformers import PatchTSTConfig, PatchTSTForClassification, PatchTSTForPretraining, Trainer

from common import modeling
from common.data import TRAIN
from common.errors import UserError
from common.techniques import reinit
from common.tasks.series_data import collate, expand

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "ff.0", "ff.3"]  # attention and MLP projections


def use_threads(count):
    """--torch_threads: set before any work (0 keeps torch's default)."""
    if count:
        torch.set_num_threads(count)


def model_config(cfg, arrays, label_set=None) -> PatchTSTConfig:
    """A checkpoint's config (--model_name_or_path), or a new one sized to the data and the flags; with the
    task's labels when label_set is given."""
    d, path = cfg.data, cfg.model.model_name_or_path
    channels = len(arrays[next(iter(arrays))][0])
    if path:
        config = modeling.from_pretrained(PatchTSTConfig, path, cfg.model)
        if d.context_length and d.context_length != config.context_length:
            raise UserError(f"--context_length {d.context_length}: the model {path} was trained on length "
                            f"{config.context_length}; drop --context_length")
        trained_on = config.num_input_channels // (2 if getattr(config, "differences", False) else 1)
        if trained_on != channels:
            raise UserError(f"--model_name_or_path {path} was trained on {trained_on} channel(s), the "
                            f"data have {channels}; pre-train on series with these channels, or pick the matching model")
    else:
        train = arrays[TRAIN if TRAIN in arrays else next(iter(arrays))]
        length = d.context_length or max(v.shape[1] for v in train)
        patch = d.patch_length or default_patch_length(length)
        if patch >= length:
            raise UserError(f"--patch_length {patch}: must be shorter than the series ({length} steps)")
        scaling = {}
        if d.scaling == "dataset":  # every value of every training series, per channel
            pooled = np.concatenate([expand(v, v.shape[1], d.differences) for v in train], axis=1)
            scaling = dict(channel_means=pooled.mean(axis=1).tolist(), channel_stds=pooled.std(axis=1).tolist())
        config = PatchTSTConfig(
            num_input_channels=channels * (2 if d.differences else 1), context_length=length, patch_length=patch,
            patch_stride=d.patch_stride or max(1, patch // 2), d_model=d.d_model, num_hidden_layers=d.num_hidden_layers,
            num_attention_heads=d.num_attention_heads, ffn_dim=d.ffn_dim, attention_dropout=d.model_dropout,
            ff_dropout=d.model_dropout, head_dropout=d.model_dropout, scaling=None,  # scaled in prepare()
            channel_attention=channels > 1 if d.channel_attention is None else d.channel_attention,
            positional_encoding_type="random" if d.position_encoding == "learned" else "sincos",
            # This project's settings (see the module's docstring): a config keeps extra keywords and saves them.
            differences=d.differences, position_free=d.position_encoding == "none", **scaling)
    config.pooling_type = d.pooling
    if cfg.model.dropout is not None:
        config.attention_dropout = config.ff_dropout = config.head_dropout = cfg.model.dropout
    if label_set is not None:
        config.num_targets = label_set.num_labels
        config.id2label, config.label2id = label_set.id2label, label_set.label2id
    return config


def default_patch_length(length) -> int:
    """About 16 patches of 50% overlap over the series, patches of 2 to 16 steps."""
    return int(min(16, max(2, length // 8)))


def model_factory(config, pretrained=None):
    """make_model(model_args) for training.TrainerFactory: a new PatchTSTForClassification, or one whose
    backbone (`model.*`) comes from a checkpoint (`pretrained`, else --model_name_or_path), pre-trained or
    fine-tuned; the head starts fresh when its shape differs. Then --freeze_encoder (a linear probe) or --lora
    on the attention and MLP projections."""
    def make_model(model_args):
        path = pretrained or model_args.model_name_or_path
        modeling.check_what_trains(model_args)
        if model_args.cache_features:
            raise UserError("--cache_features is for the text recipes; drop it here (--freeze_encoder alone trains "
                            "only the head)")
        if model_args.classifier_pooling != "cls":
            raise UserError("--classifier_pooling is for the text classifiers; here --pooling chooses how patches "
                            "become one vector")
        needs_backbone = next((flag for flag in ("freeze_encoder", "lora", "reinit_top_layers")
                               if getattr(model_args, flag)), None)
        if not path and needs_backbone:
            raise UserError(f"--{needs_backbone} needs a pre-trained backbone: pass --model_name_or_path or "
                            f"--pretrain_epochs")
        if path:
            model = without_positions(PatchTSTForClassification.from_pretrained(
                path, config=copy.deepcopy(config), ignore_mismatched_sizes=True))
            if model_args.reinit_top_layers:
                reinit.apply(model, model_args.reinit_top_layers)
        else:
            model = without_positions(PatchTSTForClassification(copy.deepcopy(config)))
        return modeling.choose_what_trains(model, model_args, peft_task_type=None, lora_targets=LORA_TARGETS)
    return make_model


def pretraining_model(config, mask_ratio) -> PatchTSTForPretraining:
    """Masked-patch reconstruction: a share of patches is zeroed, the model restores them (MSE on those)."""
    config = copy.deepcopy(config)
    config.update(dict(do_mask_input=True, mask_type="random", random_mask_ratio=mask_ratio, num_targets=1,
                       id2label=None, label2id=None))
    return without_positions(PatchTSTForPretraining(config))


def without_positions(model):
    """--position_encoding none: the (fixed) position encoding zeroed; saved so, so checkpoints keep it."""
    if getattr(model.config, "position_free", False):
        encoding = model.model.encoder.positional_encoder.position_enc
        encoding.data.zero_()
        encoding.requires_grad_(False)
    return model


def pretrain(config, train_features, training_args, output_dir, epochs, mask_ratio, learning_rate=None) -> dict:
    """Pre-train a backbone on the training series (labels unused) and save it to output_dir: the
    --pretrain_epochs convenience of the recipe. Returns the training metrics."""
    pretrain_args = dataclasses.replace(
        training_args, output_dir=output_dir, num_train_epochs=epochs, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, do_eval=False, do_predict=False, label_names=[],
        learning_rate=learning_rate or training_args.learning_rate, metric_for_best_model=None)
    unlabelled = [{"past_values": f["past_values"]} for f in train_features]
    trainer = Trainer(model=pretraining_model(config, mask_ratio), args=pretrain_args, train_dataset=unlabelled,
                      data_collator=collate)
    result = trainer.train()
    trainer.save_model(output_dir)
    trainer.accelerator.wait_for_everyone()  # under accelerate launch, all processes then load the saved backbone
    return result.metrics


