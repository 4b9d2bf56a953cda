"""Question-word marks for extractive QA (--mark_question_words): the context's words that also occur in the
question (English stop words aside) get a token type of their own, the "exact match" feature of DrQA (Chen et
al., 2017): an answer sits beside the question's words, which a few thousand questions teach attention slowly.

With case marks on as well (case_marks), a context token's type is capital + 2 × question word: the model's two
pre-trained types widen to four, the new ones starting as copies of the old (type 2 = type 0, 3 = 1), so the
model starts out unchanged and fine-tuning learns what the marks mean. The saved config says four types, so
the model loads as usual. The task's encoder sets the marks; this module finds the words and widens the model.
"""
import re

import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from common.errors import UserError
from common.techniques import case_marks

WORD = re.compile(r"[^\W_]+")  # a run of letters and digits, as case_marks reads a word


def question_words(question) -> frozenset:
    """The question's words, lowercased, stop words left out ("the", "of", "what" would mark half a context)."""
    return frozenset(word for word in map(str.lower, WORD.findall(question)) if word not in ENGLISH_STOP_WORDS)


def in_question(text, position, words) -> int:
    """1 when text[position] is in a word of `words` (lowercased), else 0."""
    if not text[position:position + 1].isalnum():
        return 0
    start = end = position
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return int(text[start:end].lower() in words)


def resolve(wanted, tokenizer, config, model_args) -> bool:
    """Whether the run marks question words (opt-in: on held-out SQuAD-slice articles, +1.0 and -0.3 F1 after
    the last epoch over two seeds, and 0.0 on dev over three). Wanted needs token types the tokenizer returns,
    and an embedding that trains (not --lora, not --freeze_encoder): otherwise one line says why."""
    if not wanted:
        return False
    if not case_marks.has_token_types(tokenizer, config):
        raise UserError(f"--mark_question_words needs a model with token types (BERT-like); {config.model_type} "
                        f"has none: drop the flag")
    fixed = "--lora" if model_args.lora else "--freeze_encoder" if model_args.freeze_encoder else None
    if fixed:
        raise UserError(f"--mark_question_words needs the token type embedding to train, which {fixed} keeps fixed: "
                        f"drop one of them")
    return True


def widen_token_types(model, count):
    """The model's token type embedding with `count` rows, row i starting as a copy of row i mod the old
    count; the config says the new count (saved with the model). Two or fewer: the model as it is."""
    if count <= 2:
        return model
    name = next(n for n, m in model.named_modules() if n.endswith("token_type_embeddings"))
    old = model.get_submodule(name)
    if old.num_embeddings >= count:
        return model
    wider = torch.nn.Embedding(count, old.embedding_dim, dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        wider.weight.copy_(old.weight[torch.arange(count) % old.num_embeddings])
    wider.weight.requires_grad = old.weight.requires_grad
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent), attribute, wider)
    model.config.type_vocab_size = count
    return model
