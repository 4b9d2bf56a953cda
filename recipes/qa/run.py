"""Extractive question answering: fine-tune a pre-trained encoder to point at the answer span in a context.

SQuAD v1.1 and v2.0 (unanswerable questions): official SQuAD JSON files, flat json/jsonl/csv/parquet
rows (id, question, context, answers {text, answer_start}) or a Hub dataset (squad, squad_v2). Contexts
longer than --max_seq_length are read in overlapping windows (--doc_stride); the answer is the best
span over all windows of a question.

    python recipes/qa/run.py recipes/qa/config.yaml
    python recipes/qa/run.py --dataset_name rajpurkar/squad_v2 --do_train --do_eval --output_dir out

HF's run_qa.py command lines work as they are: `.json` files with flat rows under `data` (as HF's examples
store SQuAD), columns question/context/answers (else the first three), `--version_2_with_negative` bare.
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, next(str(p) for p in Path(__file__).resolve().parents if (p / "common").is_dir()))

from transformers import AutoModelForQuestionAnswering  # noqa: E402

from common import args, collators, data, modeling, training  # noqa: E402
from common.errors import exits_cleanly  # noqa: E402
from common.tasks import span_extraction, squad  # noqa: E402
from common.techniques import augment, case_marks, question_marks  # noqa: E402

# Chosen on held-out passages of the SQuAD v1.1 slice's training set (bench/configs/squad.yaml says how);
# batches of similar length pad less (bench/ablations.py). The config file and the command line override them.
DEFAULTS = dict(num_train_epochs=4, learning_rate=2e-4, warmup_steps=0.144, per_device_train_batch_size=16,
                per_device_eval_batch_size=64, train_sampling_strategy="group_by_length")
LORA_LEARNING_RATE = 2e-3  # --lora without a rate: chosen on held-out SQuAD questions (studies/lora.py screen_qa)


@dataclass
class QaArguments(args.DataArguments):
    question_column_name: Optional[str] = field(default=None, metadata={"help": "Default: question, else the first column."})
    context_column_name: Optional[str] = field(default=None, metadata={"help": "Default: context, else the second column."})
    answer_column_name: Optional[str] = field(
        default=None, metadata={"help": "{text: [...], answer_start: [...]} per row (a JSON string in CSV). "
                                        "Default: answers, else the third column."})
    max_seq_length: int = field(default=384, metadata={"help": "Tokens per window: question + context slice."})
    doc_stride: int = field(default=128, metadata={"help": "Context tokens shared by consecutive windows."})
    n_best_size: int = field(default=20, metadata={"help": "Candidate spans kept per question (nbest file)."})
    max_answer_length: int = field(default=30, metadata={"help": "Longest answer, in tokens."})
    version_2_with_negative: Optional[bool] = field(
        default=None, metadata={"help": "SQuAD v2.0: questions may have no answer. Default: true when some "
                                        "labelled question has no answer."})
    case_token_types: Optional[bool] = field(
        default=None, metadata={"help": "Mark the pieces of capitalised words (question and context) as token type 1, "
                                        "in place of the question/context segments, so that an uncased model sees "
                                        "case (answers are often names). Default: on for an uncased tokenizer (the "
                                        "default all-MiniLM-L6-v2 lowercases) and a model with two token types. "
                                        "answer() and the predict tool mark the same way."})
    mark_question_words: bool = field(
        default=False, metadata={"help": "Mark the context's words that occur in the question (stop words aside) "
                                         "with token types of their own (DrQA's exact-match feature); with case "
                                         "marks the model's token types widen from 2 to 4. Off by default: no gain "
                                         "measured on held-out articles or dev. Not with --lora or "
                                         "--freeze_encoder (which keep the type embedding fixed). "
                                         "answer() and the predict tool mark the same way."})
    null_score_diff_threshold: float = field(
        default=0.0, metadata={"help": "v2.0: answer '' when the null score beats the best span by more than "
                                       "this (the best value on your dev set is reported as best_f1_thresh)."})


@exits_cleanly
def main():
    cfg = args.parse(QaArguments, defaults=DEFAULTS, lora_learning_rate=LORA_LEARNING_RATE)
    data_args = cfg.data

    # Data: checked before anything is written. Answers whose answer_start misses their text are reported
    # and left out of training. Unnamed columns are found.
    # A held-out question's passage is never trained on (--validation_split_percentage keeps passages whole).
    raw = data.load(cfg, held_out_by=data_args.context_column_name or "context")
    question, context, answers = squad.detect_columns(raw, data_args)
    raw.require_columns({question: "question_column_name", context: "context_column_name",
                         answers: "answer_column_name"}, optional_in_test=[answers])
    raw.require_texts([question, context])
    squad.check_examples(raw, answers)
    version_2 = data_args.version_2_with_negative
    if version_2 is None:
        version_2 = squad.has_unanswerable(raw, answers)
    squad.drop_mismatched_answers(raw, context, answers)
    augment.refuse(cfg, "extractive QA", "answers are character spans of the context")

    # Tokenize: each question with overlapping windows of its context; the stride is checked first. An
    # uncased model sees capitals as token type 1 (--case_token_types, on by default where it can), and the
    # context's words that the question names as +2 (--mark_question_words, opt-in).
    tokenizer = modeling.load_tokenizer(cfg.model)
    span_extraction.check_windows_fit(tokenizer, raw, question, data_args.max_seq_length, data_args.doc_stride)
    config = modeling.load_config(cfg.model)
    data_args.case_token_types = case_marks.resolve(tokenizer, config, data_args.case_token_types)
    data_args.mark_question_words = question_marks.resolve(data_args.mark_question_words, tokenizer, config, cfg.model)
    encoder = span_extraction.window_encoder(tokenizer, question, context, answers, data_args.max_seq_length,
                                             data_args.doc_stride, data_args.case_token_types,
                                             data_args.mark_question_words)
    encoded = data.tokenize(raw, encoder, cfg, desc="windowing", with_indices=True)

    # Model: pre-trained encoder + a fresh start/end head (qa_outputs; trained in full under --lora), with
    # four token types where case and question words are both marked.
    types = 2 ** (data_args.case_token_types + data_args.mark_question_words)

    def make_model(model_args):  # per trial under --hpo_trials
        model = modeling.load_model(model_args, AutoModelForQuestionAnswering, config, "QUESTION_ANS")
        return question_marks.widen_token_types(model, types)
    collator = collators.dynamic_padding(tokenizer, cfg)

    # Windows' logits back to one answer per question, scored with the official SQuAD semantics.
    scorer = span_extraction.SpanScorer(raw, encoded, question, context, answers, data_args.n_best_size,
                                        data_args.max_answer_length, version_2, data_args.null_score_diff_threshold,
                                        progress=not cfg.training.disable_tqdm)
    trainers = training.TrainerFactory(make_model, tokenizer, encoded, collator,
                                       compute_metrics=scorer.compute_metrics, main_metric=("f1", True))
    training.run(trainers, cfg, raw, encoded, scorer.write_predictions, usage=span_extraction.usage)

if __name__ == "__main__":
    main()
