"""One tokenisation rule for every stage, so dumped tokens and scored prompts agree.

The first segment of a sequence gets the tokenizer's special tokens (a BOS
where the model uses one); later segments are appended without them.
"""

from __future__ import annotations


def encode_text(tokenizer, text: str, first: bool) -> list[int]:
    return tokenizer(text, add_special_tokens=first).input_ids
