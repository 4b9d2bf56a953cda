"""A BERT classifier that reads the mean of its token outputs instead of [CLS] (--classifier_pooling mean).

BERT's classifier reads the pooler (dense + tanh) over the [CLS] token. Sentence encoders such as
all-MiniLM-L6-v2 were trained for mean-pooled embeddings and their [CLS] never for a classifier: here the pooler
keeps its weights and reads the mean over the tokens the attention mask keeps.

The model saves as its own type (`mean_pooled_bert`) with this file beside its weights, so it loads only as
what it is: the project's tools know the type, `pipeline(..., trust_remote_code=True)` runs this file, and
plain transformers without that flag refuses it rather than reading [CLS] with weights trained on the mean.
This file imports nothing of the project, as it must to load from a model directory on its own.
"""
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification


class MeanPooledBertConfig(BertConfig):
    model_type = "mean_pooled_bert"


def masked_mean(hidden_states, attention_mask):
    if attention_mask is None or attention_mask.dim() != 2:  # no mask (or a prepared 4-d one): every token
        return hidden_states.mean(1)
    weights = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1)


def _pool_the_mean(encoder, args, kwargs, output):
    """The encoder's pooler over the mean: the pooler reads position 0, so it is given the mean as a one-token
    sequence (its own module, so a LoRA run's trained copy of the pooler is the one called)."""
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    output.pooler_output = encoder.pooler(masked_mean(output.last_hidden_state, mask).unsqueeze(1))
    return output


class MeanPooledBertForSequenceClassification(BertForSequenceClassification):
    config_class = MeanPooledBertConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert.register_forward_hook(_pool_the_mean, with_kwargs=True)


def from_bert_config(config) -> MeanPooledBertConfig:
    """A BERT config (with the task's labels) as a mean-pooled one; the same config if it is one already."""
    if isinstance(config, MeanPooledBertConfig):
        return config
    settings = config.to_dict()
    settings.pop("model_type", None)
    return MeanPooledBertConfig(**settings)


AutoConfig.register(MeanPooledBertConfig.model_type, MeanPooledBertConfig, exist_ok=True)
AutoModelForSequenceClassification.register(MeanPooledBertConfig, MeanPooledBertForSequenceClassification,
                                            exist_ok=True)
# save_pretrained copies this file beside the weights and names it in config.json's auto_map
MeanPooledBertConfig.register_for_auto_class()
MeanPooledBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
