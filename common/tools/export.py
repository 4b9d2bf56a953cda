"""Export a trained output directory to ONNX, optionally with int8 weights, for serving with ONNX Runtime.

    python -m common.tools.export outputs/text_classification --format onnx                 # -> .../onnx
    python -m common.tools.export outputs/ner --format onnx --quantize int8 --output served/ner

Text classification, NLI, NER, QA (LoRA runs: the merged model) and PatchTST time-series classifiers.
The exporter is PyTorch's own (`torch.onnx.export(dynamo=True)`: torch.export, then ONNX), int8 is ONNX
Runtime's dynamic quantization (weights int8 ahead of time, activations quantized per batch), and the
export is checked against the PyTorch model on sample inputs before anything is kept. The directory holds
model.onnx, config.json (label names), the tokenizer, run_config.yaml (the columns common.tools.predict reads),
all_results.json (the source run's scores) and onnx_export.json (versions, the measured difference to
PyTorch); common.onnx_models loads it for pipeline(), common.tools.predict and span_extraction.answer.
"""
import argparse
import logging
import os
import shutil
import warnings

import numpy as np
import torch
from transformers import AutoTokenizer, PatchTSTForClassification

from common import artifacts, inference, modeling, onnx_models
from common.args import RUN_FINISHED_MARKER, RESOLVED_CONFIG_NAME
from common.errors import UserError, exits_cleanly

logger = logging.getLogger(__name__)

FP32_TOLERANCE = 1e-4  # largest |logit difference| an fp32 export may show against PyTorch on the samples
SAMPLE_TEXTS = [("Who wrote it?", "The report was written by Anna Schmidt in Berlin last year ."),
                ("Where?", "Paris ."),
                ("What does the second sentence of this longer question ask about?",
                 "A longer context : the film is charming , the plot is dull , and the ending comes far too late .")]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.tools.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="A trained output directory (its config.json, weights, tokenizer).")
    parser.add_argument("--format", required=True, choices=["onnx"])
    parser.add_argument("--quantize", choices=["int8"], help="int8 weights (ONNX Runtime dynamic quantization).")
    parser.add_argument("--output", help="Where to write; default MODEL_DIR/onnx (or onnx-int8).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --output directory.")
    opts = parser.parse_args(argv)
    output = opts.output or os.path.join(opts.model_dir, "onnx-int8" if opts.quantize else "onnx")
    export(opts.model_dir, output, opts.quantize, opts.overwrite)
    print(f"exported {opts.model_dir} -> {output}")


def export(model_dir, output, quantize=None, overwrite=False) -> dict:
    """Writes the export into a temporary folder beside `output`, renamed into place only once checked."""
    config = inference.trained_config(model_dir)
    auto_class = inference.task_of(model_dir, config)
    if os.path.exists(output) and os.listdir(output) and not overwrite:
        raise UserError(f"--output {output} already exists and is not empty; pass --overwrite or choose another")
    model = inference.load(model_dir, auto_class) if auto_class else PatchTSTForClassification.from_pretrained(
        model_dir)
    if modeling.is_lora(model):  # an adapter directory: fold the adapter in, export one plain model
        model = model.merge_and_unload()
        model.config.architectures = [type(model).__name__]  # the adapter's config named the base model only
    model = model.float().eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir) if auto_class else None
    inputs = _sample_inputs(model, tokenizer)
    output_names = onnx_models.TWINS[auto_class][1] if auto_class else ("prediction_logits",)

    tmp = f"{output.rstrip(os.sep)}.tmp{os.getpid()}"
    os.makedirs(tmp)
    try:
        path = os.path.join(tmp, onnx_models.ONNX_FILE)
        _to_onnx(model, inputs, output_names, path)
        fp32_matmuls = _quantize_int8(path, model.config) if quantize else None
        info = {"format": "onnx", "quantize": quantize, "int8_kept_fp32_matmuls": fp32_matmuls,
                "source": os.path.abspath(model_dir), "architecture": config.architectures[0],
                "outputs": list(output_names),
                "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
                "onnxruntime": _ort_version(), "check": _compare(model, inputs, path, output_names, quantize)}
        model.config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name in (RESOLVED_CONFIG_NAME, RUN_FINISHED_MARKER):  # the columns common.tools.predict reads; the run's scores
            if os.path.exists(os.path.join(model_dir, name)):
                shutil.copy(os.path.join(model_dir, name), tmp)
        artifacts.write_json(os.path.join(tmp, onnx_models.EXPORT_INFO), info)
        if os.path.exists(output):
            shutil.rmtree(output)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.warning("check on %d sample inputs: %s", len(next(iter(inputs.values()))), info["check"])
    return info


def _sample_inputs(model, tokenizer):
    """A padded batch of three lengths (pairs, so token_type_ids vary too), or three random series."""
    if tokenizer is None:
        config = model.config
        return {"past_values": torch.randn(3, config.context_length, config.num_input_channels,
                                           generator=torch.Generator().manual_seed(0))}
    questions, contexts = zip(*SAMPLE_TEXTS)
    encoded = tokenizer(list(questions), list(contexts), padding=True, return_tensors="pt")
    return {name: encoded[name] for name in tokenizer.model_input_names if name in encoded}


def _to_onnx(model, inputs, output_names, path):
    batch = torch.export.Dim("batch")
    dims = {0: batch} if "past_values" in inputs else {0: batch, 1: torch.export.Dim("sequence")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
        try:
            torch.onnx.export(model, (), path, kwargs=inputs, input_names=list(inputs),
                              output_names=list(output_names), dynamic_shapes={n: dims for n in inputs},
                              dynamo=True, external_data=False, verbose=False)
        except Exception as err:
            raise UserError(f"torch.onnx.export could not export this {type(model).__name__}: "
                            f"{str(err).splitlines()[0]}") from None


def _quantize_int8(path, config):
    """Dynamic int8 in place, weights per output channel. The feed-forward output projections stay fp32: their
    inputs (after GELU) carry the outliers that int8 clips worst in BERT-style encoders (on 1,000 SST-2 training
    sentences the model never saw, agreement with fp32 went 98.7% -> 99.2%; README, Serving). The dynamo
    exporter's value_info shape annotations are dropped first: ONNX Runtime's quantizer re-infers shapes and
    rejects some of them (they are optional metadata)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    graph = onnx.load(path)
    del graph.graph.value_info[:]
    inner = getattr(config, "intermediate_size", None) or getattr(config, "ffn_dim", None)
    shapes = {tensor.name: list(tensor.dims) for tensor in graph.graph.initializer}
    keep_fp32 = [node.name for node in graph.graph.node if node.op_type == "MatMul"
                 and any(shapes.get(name, [None])[0] == inner for name in node.input)]
    fp32 = f"{path}.fp32.onnx"
    onnx.save(graph, fp32)
    quantize_dynamic(fp32, path, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep_fp32)
    os.remove(fp32)
    return len(keep_fp32)


def _compare(model, inputs, path, output_names, quantize):
    """ONNX Runtime against PyTorch on the sample inputs: largest |difference| per output and whether every
    argmax (label, tag, span start/end) agrees. An fp32 export beyond FP32_TOLERANCE is refused."""
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(list(output_names), {n: v.numpy() for n, v in inputs.items()})
    with torch.no_grad():
        reference = model(**inputs)
    check = {"samples": len(next(iter(inputs.values()))), "max_abs_diff": {}, "same_argmax": True}
    for name, value in zip(output_names, got):
        expected = reference[name].numpy()
        check["max_abs_diff"][name] = float(np.abs(value - expected).max())
        check["same_argmax"] &= bool((value.argmax(-1) == expected.argmax(-1)).all())
    worst = max(check["max_abs_diff"].values())
    if not quantize and worst > FP32_TOLERANCE:
        raise UserError(f"the ONNX export differs from PyTorch by {worst:.2g} on sample inputs (tolerance "
                        f"{FP32_TOLERANCE:g}); not kept. Report the model type and versions with this message")
    return check


def _ort_version():
    import onnxruntime
    return onnxruntime.__version__


if __name__ == "__main__":
    exits_cleanly(main)()
