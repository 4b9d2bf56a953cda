"""Case marks for uncased models (--case_token_types, --case_dropout): all-MiniLM-L6-v2 lowercases its input,
so it cannot see a name's capital letter, the strongest cue for names in English. The pieces of words that
start with a capital get token type 1, the pre-trained second-segment embedding, which fine-tuning learns to
read: no new weights, a standard model. The task's encoder sets the marks (it knows what a word is); this
module decides whether a run uses them, checks the flags, and drops marks in training where asked.
"""
import torch

from common.errors import UserError


def capitalised(text, position) -> int:
    """1 when text[position] is in a word (a run of letters and digits: BERT's pre-tokenizer splits off
    punctuation) that starts with a capital, else 0."""
    if not text[position:position + 1].isalnum():
        return 0
    while position > 0 and text[position - 1].isalnum():
        position -= 1
    return int(text[position:position + 1].isupper())


def has_token_types(tokenizer, config) -> bool:
    """Whether the model has two token types or more and its tokenizer returns them (BERT's do)."""
    return "token_type_ids" in tokenizer.model_input_names and getattr(config, "type_vocab_size", 0) >= 2


def resolve(tokenizer, config, wanted=None, dropout=0.0) -> bool:
    """Whether the run marks case (--case_token_types): wanted None means exactly when the tokenizer lowercases
    and the model has two token types that its tokenizer returns (BERT's do); True on a model without them
    stops in one line. Checks --case_dropout's range too, before anything is written. (--lora leaves the type
    embedding fixed and reads its pre-trained difference.)"""
    if not 0 <= dropout < 1:
        raise UserError(f"--case_dropout {dropout}: give a fraction of the training windows, at least 0 and below 1")
    able = has_token_types(tokenizer, config)
    if wanted is None:
        return able and tokenizer("A")["input_ids"] == tokenizer("a")["input_ids"]
    if wanted and not able:
        raise UserError(f"--case_token_types needs a model with two token types (BERT-like); {config.model_type} "
                        f"has {getattr(config, 'type_vocab_size', 0)}: drop the flag (a cased model sees case anyway)")
    return wanted


def unmark_in_training(model, fraction):
    """--case_dropout: in training only, a random `fraction` of the windows of each batch lose their case marks
    (all token type 0), so the model also tags unmarked, lowercased input (what pipeline() passes it) rather than
    failing on it. A forward pre-hook on the model, not saved with it."""
    def unmark(module, args, kwargs):
        types = kwargs.get("token_type_ids")
        if module.training and types is not None:
            kwargs["token_type_ids"] = types * (torch.rand(len(types), 1, device=types.device) >= fraction)
        return args, kwargs
    if fraction:
        model.register_forward_pre_hook(unmark, with_kwargs=True)
    return model
