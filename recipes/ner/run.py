"""Named-entity recognition: fine-tune a pre-trained encoder to tag each word (B-PER, I-LOC, O, ...).

Tags are read as IOB1 (converted to IOB2), IOB2 or BIOES; sentences longer than --max_seq_length are
split into overlapping windows, so every word is predicted; scores are entity-level (seqeval, strict).

    python recipes/ner/run.py recipes/ner/config.yaml
    accelerate launch recipes/ner/run.py recipes/ner/config.yaml --train_file eng.train --conll_tag_index 3
    python recipes/ner/run.py --train_file train.json --validation_file dev.json --do_train --do_eval --output_dir out

HF's run_ner.py command lines work as they are: without column flags, `tokens` (else the first column) and
`<task_name>_tags` (else the second) are used, as run_ner does.
"""
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, next(str(p) for p in Path(__file__).resolve().parents if (p / "common").is_dir()))

from transformers import AutoModelForTokenClassification  # noqa: E402

from common import args, collators, data, modeling, training  # noqa: E402
from common.errors import exits_cleanly  # noqa: E402
from common.tasks import tagging  # noqa: E402
from common.techniques import case_marks, imbalance  # noqa: E402

# Tuned on CoNLL-2003 (bench/quality_results.md); the config file and the command line override them.
# Context, epochs, rate and batch (of windows): chosen by the search on CoNLL-2003's training sentences
# (bench/configs/conll2003.yaml). Sentences that are not in document order want --document_context false.
DEFAULTS = dict(document_context=True, num_train_epochs=5, learning_rate=1.88e-4, per_device_train_batch_size=8,
                per_device_eval_batch_size=128, train_sampling_strategy="group_by_length")  # group: bench/ablations.py
LORA_LEARNING_RATE = 2e-3  # --lora without a rate: chosen on held-out CoNLL sentences (studies/lora.py screen_ner)


@dataclass
class NerArguments(args.DataArguments):
    task_name: str = field(default="ner", metadata={"help": "ner, pos, chunk...: the tags are <task_name>_tags by default."})
    text_column_name: Optional[str] = field(
        default=None, metadata={"help": "Column of word lists (json/parquet/Hub). Default: tokens, else the first column."})
    label_column_name: Optional[str] = field(
        default=None, metadata={"help": "Column of tag lists, one tag per word. Default: <task_name>_tags (ner_tags), "
                                        "else the second column."})
    conll_tag_index: int = field(
        default=-1, metadata={"help": "CoNLL files (.conll, .txt): the field holding the tag; -1 is the last."})
    tag_scheme: str = field(default="auto", metadata={"help": "auto, IOB1, IOB2 or BIOES. IOB1 becomes IOB2."})
    label_all_tokens: bool = field(
        default=False, metadata={"help": "Train on every sub-token (the I- form of its word's tag), not only the first."})
    return_entity_level_metrics: bool = field(
        default=True, metadata={"help": "Report each entity type's precision/recall/F1 too, not only the overall ones."})
    document_context: bool = field(
        default=False, metadata={"help": "Read each sentence among its neighbours: the sentences, in file order, "
                                         "are packed into windows of --max_seq_length sub-tokens overlapping by "
                                         "--stride, each word tagged from the window where it sits most central. "
                                         "Batches then count windows, not sentences. On by default (it "
                                         "won on CoNLL-2003); false for sentences that are not in document order."})
    case_token_types: Optional[bool] = field(
        default=None, metadata={"help": "Mark the pieces of capitalised words as token type 1, so that an uncased "
                                         "model sees case (+1.6 test F1 on CoNLL-2003 with the default model). "
                                         "Default: on for an uncased tokenizer (the default all-MiniLM-L6-v2 "
                                         "lowercases) and a model with two token types. The trained model then "
                                         "tags through common.tools.predict, which marks them too (pipeline() "
                                         "does not)."})
    case_dropout: float = field(
        default=0.2, metadata={"help": "With --case_token_types: the fraction of training windows shown without case "
                                       "marks, so the model also tags unmarked input (pipeline()) well. 0: off."})
    stride: int = field(
        default=32, metadata={"help": "Sub-tokens shared by consecutive windows of a sentence longer than "
                                      "--max_seq_length (such sentences are windowed, not truncated)."})


@exits_cleanly
def main():
    cfg = args.parse(NerArguments, defaults=DEFAULTS, lora_learning_rate=LORA_LEARNING_RATE)
    data_args = cfg.data

    # Data and tags: checked (and IOB1 converted) before anything is written. Unnamed columns are found.
    # A held-out part (or fold) takes runs of consecutive sentences: a document's names stay on one side.
    raw = data.load(cfg, conll=tagging.conll_columns(data_args), held_out_by=data.CONSECUTIVE_ROWS)
    words, tags = tagging.detect_columns(raw, data_args)
    raw.require_columns({words: "text_column_name", tags: "label_column_name"}, optional_in_test=[tags])
    tagging.check_rows(raw, words, tags)
    tag_set = tagging.TagSet.from_splits(raw, tags, data_args.label_list, data_args.tag_scheme,
                                         data_args.strict_labels)
    raw = tagging.training_mentions(raw, cfg, words, tags, tag_set.scheme)  # --augment mentions

    # Tokenize words into windows of sub-tokens (sentences, or with --document_context runs of them); each
    # window remembers the sentence and position of every word it starts. An uncased model sees capitals as
    # token type 1 (--case_token_types, on by default where it can).
    tokenizer, config = modeling.load_tokenizer(cfg.model), modeling.load_config(cfg.model, tag_set)
    data_args.case_token_types = case_marks.resolve(tokenizer, config, data_args.case_token_types,
                                                     data_args.case_dropout)
    encoder = tagging.window_encoder(tokenizer, tag_set, words, tags, data_args.max_seq_length, data_args.stride,
                                     data_args.label_all_tokens, data_args.document_context,
                                     data_args.case_token_types)
    encoded = data.tokenize(raw, encoder, cfg, with_indices=True)

    # Model: pre-trained encoder + a fresh token-classification head (+ --freeze_encoder / --lora).
    make_model = lambda model_args: case_marks.unmark_in_training(  # noqa: E731  (per trial under --hpo_trials)
        modeling.load_model(model_args, AutoModelForTokenClassification, config, "TOKEN_CLS"),
        data_args.case_dropout if data_args.case_token_types else 0)

    # Metrics and prediction files see words: window predictions are merged back per sentence first.
    trainers = training.TrainerFactory(  # a Trainer per run, or per trial under --hpo_trials
        make_model, tokenizer, encoded, collators.TokenClassificationPadding(tokenizer, cfg),
        compute_metrics=tagging.metrics_for(tag_set, encoded, data_args.return_entity_level_metrics),
        main_metric=("f1", True),
        compute_loss_func=imbalance.loss_from_flags(cfg, tag_set, encoded))
    training.run(trainers, cfg, raw, encoded, tagging.prediction_writer(tag_set, encoded, words, tags),
                 usage=functools.partial(tagging.usage, case_token_types=data_args.case_token_types))


if __name__ == "__main__":
    main()
