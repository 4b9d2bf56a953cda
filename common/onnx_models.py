"""ONNX Runtime sessions behind the transformers model interface, so `pipeline()` and the project's own
prediction code (common.tools.predict, span_extraction.answer) take an exported directory unchanged.

optimum's ORTModelFor* classes do this upstream, but optimum-onnx 0.1.0 (the only release) requires
transformers < 4.58 and this project pins 5.23; this module is the small part of them the project needs.
"""
import os

import numpy as np
import torch
from transformers import (AutoConfig, AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, PretrainedConfig, PreTrainedModel)
from transformers.modeling_outputs import (QuestionAnsweringModelOutput, SequenceClassifierOutput,
                                           TokenClassifierOutput)

from common.techniques import mean_pooling  # noqa: F401  (AutoConfig knows saved mean-pooled classifiers)

ONNX_FILE = "model.onnx"
EXPORT_INFO = "onnx_export.json"  # how the directory was made: format, quantization, check against PyTorch


class _OnnxRuntimeConfig(PretrainedConfig):
    """Only a key to register the classes below with the Auto classes, so pipeline() lists them as
    supported; a BERT (or any) directory still loads its own PyTorch class."""
    model_type = "onnx_runtime_export"


class OnnxModel(PreTrainedModel):
    """A model whose forward runs an ONNX Runtime session on CPU; outputs are torch tensors in the
    task's ModelOutput, as the PyTorch model returns them."""
    config_class = _OnnxRuntimeConfig
    output_class = None  # the task's ModelOutput
    main_input_name = "input_ids"

    def __init__(self, config, session):
        super().__init__(config)
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def from_pretrained(cls, directory, threads=None, **unused):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(os.path.join(directory, ONNX_FILE), options,
                                               providers=["CPUExecutionProvider"])
        return cls(AutoConfig.from_pretrained(directory), session)

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **unused):
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        defaults = {"attention_mask": torch.ones_like, "token_type_ids": torch.zeros_like}
        feed = {}
        for name in self.input_names:
            value = given[name] if given.get(name) is not None else defaults[name](input_ids)
            feed[name] = value.cpu().numpy().astype(np.int64)
        outputs = self.session.run(self.output_names, feed)
        return self.output_class(**{n: torch.from_numpy(o) for n, o in zip(self.output_names, outputs)})


class OnnxModelForSequenceClassification(OnnxModel):
    output_class = SequenceClassifierOutput


class OnnxModelForTokenClassification(OnnxModel):
    output_class = TokenClassifierOutput


class OnnxModelForQuestionAnswering(OnnxModel):
    output_class = QuestionAnsweringModelOutput


# PyTorch auto class -> (its ONNX twin, the outputs an export keeps in order, the PEFT task type of a LoRA run).
TWINS = {
    AutoModelForSequenceClassification: (OnnxModelForSequenceClassification, ("logits",), "SEQ_CLS"),
    AutoModelForTokenClassification: (OnnxModelForTokenClassification, ("logits",), "TOKEN_CLS"),
    AutoModelForQuestionAnswering: (OnnxModelForQuestionAnswering, ("start_logits", "end_logits"), "QUESTION_ANS"),
}
for _auto, (_twin, *_) in TWINS.items():
    _auto.register(_OnnxRuntimeConfig, _twin, exist_ok=True)


def is_exported(directory) -> bool:
    return os.path.exists(os.path.join(directory, ONNX_FILE))
