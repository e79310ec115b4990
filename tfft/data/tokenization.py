"""The checkpoint's fast tokenizer (Hugging Face ``tokenizers``) and text encoding."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from tfft.data.features import MODEL_INPUTS, Features
from tfft.errors import TfftError, reason

WORDPIECE_VOCAB = "vocab.txt"
# Vocabulary files servers may tokenize with instead of tokenizer.json.
_VOCAB_PATTERNS = (WORDPIECE_VOCAB, "vocab.json", "merges.txt", "*.model")


def load_tokenizer(folder: str | Path):
    """Loads the fast tokenizer saved in a Hugging Face folder.

    A folder with only a WordPiece ``vocab.txt`` (the original TF1 BERT layout) gets a
    BERT tokenizer, lowercasing unless the vocabulary has uppercase pieces.

    Raises:
        TfftError: if the folder has no usable fast tokenizer.
    """
    import transformers

    transformers.logging.set_verbosity_error()
    folder = Path(folder)
    try:
        if _only_wordpiece_vocab(folder):
            tokenizer = _wordpiece_tokenizer(folder / WORDPIECE_VOCAB)
        else:
            tokenizer_class = _named_class(folder) or transformers.AutoTokenizer
            tokenizer = tokenizer_class.from_pretrained(str(folder))
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


def _named_class(folder: Path):
    """The fast tokenizer class ``tokenizer_config.json`` names, or None to ask ``AutoTokenizer``.

    ``AutoTokenizer`` imports transformers' config module, which imports PyTorch when it
    is installed: about 1 s and 200 MB of every run that does not otherwise need it.
    """
    import transformers

    path = folder / "tokenizer_config.json"
    try:
        name = json.loads(path.read_text(encoding="utf-8")).get("tokenizer_class") if path.is_file() else None
    except (ValueError, AttributeError):
        return None  # AutoTokenizer reports the file.
    if not isinstance(name, str) or not name:
        return None
    return getattr(transformers, name.removesuffix("Fast") + "Fast", None)


def _only_wordpiece_vocab(folder: Path) -> bool:
    return (folder / WORDPIECE_VOCAB).is_file() and not any(
        (folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "config.json")
    )


def _wordpiece_tokenizer(vocab: Path):
    """A BERT fast tokenizer for a bare ``vocab.txt``; cased iff the vocabulary has capitals."""
    import transformers

    pieces = vocab.read_text(encoding="utf-8").split("\n")
    cased = any(piece != piece.lower() for piece in pieces if not piece.startswith("["))
    logging.info("'%s' alone: using a %s BERT WordPiece tokenizer", vocab,
                 "cased" if cased else "lowercasing")
    tokenizer = transformers.BertTokenizerFast(vocab=str(vocab), do_lower_case=not cased)
    tokenizer.name_or_path = str(vocab.parent)
    return tokenizer


def add_special_tokens(tokenizer, tokens: list[str]) -> int:
    """Adds ``tokens`` as special tokens: never split, lowercased or normalised.

    Tokens the vocabulary already has keep their ids. Returns how many ids are new.

    Raises:
        TfftError: for a token that is empty or not a string.
    """
    for token in tokens:
        if not isinstance(token, str) or not token.strip() or token != token.strip():
            raise TfftError(
                f"task.add_special_tokens holds {token!r}; give non-empty strings without surrounding "
                "spaces, e.g. ['<e1>', '</e1>']"
            )
    before = len(tokenizer)
    tokenizer.add_tokens(list(tokens), special_tokens=True)
    if len(tokenizer) > before:
        logging.info("added %d special tokens to the tokenizer: %s", len(tokenizer) - before, tokens)
    return len(tokenizer) - before


def save_tokenizer(tokenizer, folder: Path) -> None:
    """Saves the tokenizer and copies its source vocabulary files into ``folder``.

    ``save_pretrained`` writes only ``tokenizer.json`` and its config; the original
    ``vocab.txt``, ``merges.txt`` or SentencePiece model are copied too, for servers
    that tokenize with TensorFlow Text or other libraries.
    """
    tokenizer.save_pretrained(str(folder))
    source = Path(tokenizer.name_or_path)
    for pattern in _VOCAB_PATTERNS:
        for file in source.glob(pattern) if source.is_dir() else ():
            if file.resolve() != (folder / file.name).resolve():
                shutil.copyfile(file, folder / file.name)


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
