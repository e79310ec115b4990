"""The checkpoint's fast tokenizer (Hugging Face ``tokenizers``) and text encoding."""

from __future__ import annotations

import logging
from pathlib import Path

from tfft.data.features import Features
from tfft.errors import TfftError, reason

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def load_tokenizer(folder: str | Path):
    """Loads the fast tokenizer saved in a Hugging Face folder.

    Raises:
        TfftError: if the folder has no usable fast tokenizer.
    """
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as error:
        raise TfftError(
            f"cannot load a tokenizer from '{folder}' ({reason(error)}); the folder needs "
            "tokenizer.json or vocab.txt, or set task.tokenizer"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise TfftError(
            f"tokenizer in '{folder}' is not a fast tokenizer; save one with tokenizer.json"
        )
    return tokenizer


def encode_texts(
    tokenizer, first: list[str], second: list[str] | None, max_length: int, labels=None
) -> Features:
    """Tokenizes single sentences or sentence pairs, truncating to ``max_length``.

    Pairs are truncated longest-first, as BERT's reference code does.
    """
    encoded = tokenizer(
        first,
        second,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=True,
        return_attention_mask=True,
    )
    columns = {name: encoded[name] for name in MODEL_INPUTS}
    features = Features.from_lists(columns, labels)
    truncated = int((features.lengths >= max_length).sum())
    if truncated:
        logging.info("%d of %d examples reach max_seq_length=%d", truncated, len(features),
                     max_length)
    return features
