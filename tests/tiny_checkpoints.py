"""Tiny random checkpoints of every supported family, and a TF1 copy of a tiny BERT.

``make_tiny_checkpoint`` saves a random PyTorch base model (safetensors) with a fast
tokenizer of the family's kind, so that ``transformers.AutoModel`` and
``transformers.AutoTokenizer`` reload the folder offline. ``write_tf1_bert_checkpoint``
rewrites a tiny BERT folder in the google-research/bert TF1 layout.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import numpy as np
from conftest import WORDS, write_vocab

FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert")

# Architecture settings shared by every family except DistilBERT, which names them differently.
_COMMON = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)
# RoBERTa positions start at pad_token_id + 1, so the table needs room for the offset; real
# RoBERTa/XLM-R checkpoints have one token type and LayerNorm eps 1e-5.
_ROBERTA = dict(_COMMON, max_position_embeddings=66, type_vocab_size=1, layer_norm_eps=1e-5)
_SETTINGS = {
    "bert": _COMMON,
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "electra": dict(_COMMON, embedding_size=16),
    # Weights larger than the default 0.02 so that gelu_new and exact GELU differ visibly.
    "albert": dict(_COMMON, embedding_size=16, num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2,
                   hidden_act="gelu_new", initializer_range=0.1),
    "distilbert": dict(dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64,
                       dropout=0.1, attention_dropout=0.1),
}
_CLASSES = {  # family -> (config class, model class) in transformers
    "bert": ("BertConfig", "BertModel"),
    "roberta": ("RobertaConfig", "RobertaModel"),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel"),
    "distilbert": ("DistilBertConfig", "DistilBertModel"),
    "electra": ("ElectraConfig", "ElectraModel"),
    "albert": ("AlbertConfig", "AlbertModel"),
}

# google-research/bert's bert_config.json keys.
TF1_CONFIG_KEYS = (
    "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size", "initializer_range",
    "intermediate_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
    "type_vocab_size", "vocab_size",
)
TF1_CHECKPOINT_NAME = "bert_model.ckpt"


# --- tokenizers ----------------------------------------------------------------------------


def _wordpiece_tokenizer(family: str, folder: Path):
    """BERT-style WordPiece (``[CLS] A [SEP] B [SEP]``, token types 0/1) from conftest's vocab."""
    import transformers

    write_vocab(folder / "vocab.txt")
    cls = {"bert": transformers.BertTokenizerFast, "distilbert": transformers.DistilBertTokenizerFast,
           "electra": transformers.ElectraTokenizerFast}[family]
    return cls(vocab=str(folder / "vocab.txt"))


def _byte_level_bpe_tokenizer(folder: Path):
    """RoBERTa byte-level BPE (``<s> A </s></s> B </s>``) trained on conftest's words.

    Ids: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, the 256 byte symbols, merges,
    and ``<mask>`` last, as in ``roberta-base``. ``vocab.json`` and ``merges.txt`` are
    written next to ``tokenizer.json``, as real RoBERTa checkpoints have them.
    """
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1000, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    # Each word alone (sentence-initial, no space) and after a space ("Ġword").
    bpe.train_from_iterator([" ".join(WORDS), *WORDS], trainer)
    trained = json.loads(bpe.to_str())["model"]
    vocab = dict(trained["vocab"])
    vocab["<mask>"] = len(vocab)
    merges = [tuple(merge) for merge in trained["merges"]]
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return transformers.RobertaTokenizerFast(vocab=vocab, merges=merges)


def _unigram_pieces() -> list[tuple[str, float]]:
    """SentencePiece-style pieces: whole words after ``▁``, then single characters."""
    characters = string.ascii_letters + string.digits + string.punctuation
    return ([("▁" + word, -3.0) for word in WORDS] + [("▁", -4.0)]
            + [(character, -6.0) for character in characters])


def _unigram_tokenizer(family: str):
    """XLM-R (``<s> A </s></s> B </s>``) or ALBERT (``[CLS] A [SEP] B [SEP]``) Unigram tokenizer.

    XLM-R ids: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, pieces, ``<mask>`` last.
    ALBERT ids: ``<pad>`` 0, ``<unk>`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4, pieces.
    """
    import transformers

    if family == "xlm-roberta":
        vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *_unigram_pieces(),
                 ("<mask>", 0.0)]
        return transformers.XLMRobertaTokenizerFast(vocab=vocab)
    vocab = [(special, 0.0) for special in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")] + _unigram_pieces()
    return transformers.AlbertTokenizerFast(vocab=vocab)


def make_tokenizer(family: str, folder: Path):
    """The family's fast tokenizer; WordPiece/BPE families also write their vocabulary files."""
    if family in ("bert", "distilbert", "electra"):
        return _wordpiece_tokenizer(family, folder)
    if family == "roberta":
        return _byte_level_bpe_tokenizer(folder)
    return _unigram_tokenizer(family)


# --- models --------------------------------------------------------------------------------


def make_tiny_checkpoint(family: str, folder: Path, seed: int = 0, head: str = "", **overrides) -> Path:
    """Saves a random tiny base model of ``family`` (PyTorch, safetensors) with its fast tokenizer.

    Args:
        family: One of :data:`FAMILIES`.
        folder: Where to save; created if missing.
        seed: The PyTorch seed for the weights.
        head: A task class suffix (e.g. ``ForMaskedLM``) to save that model instead of the base one.
        **overrides: Config fields to change (the family's own names, e.g. ``dim`` for DistilBERT).

    Returns:
        ``folder``.
    """
    import torch
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}'; expected one of {FAMILIES}")
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(family, folder)
    special_ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if family in ("roberta", "xlm-roberta", "albert"):
        special_ids.update(bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    config_name, model_name = _CLASSES[family]
    config = getattr(transformers, config_name)(**{**_SETTINGS[family], **special_ids, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, model_name.removesuffix("Model") + head if head else model_name)(config)
    # Random init leaves LayerNorm at 1/0 and biases at 0; perturb them so parity checks
    # exercise every tensor's mapping.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            lowered = name.lower()
            if "layernorm" in lowered or "layer_norm" in lowered or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


# --- TF1 BERT ------------------------------------------------------------------------------


def _tf1_name(hf_name: str) -> tuple[str, bool] | None:
    """The TF1 variable name of a Hugging Face ``BertModel`` tensor and whether to transpose it.

    None for buffers that are not weights (``position_ids``).
    """
    name = hf_name.removeprefix("bert.")
    if name.endswith("position_ids") or name.endswith("token_type_ids"):
        return None
    parts = name.split(".")
    leaf = parts.pop()
    module = "/".join(parts).replace("encoder/layer/", "encoder/layer_")
    if parts[-1].endswith("_embeddings"):
        return f"bert/{module}", False
    if parts[-1] == "LayerNorm":
        return f"bert/{module}/{'gamma' if leaf == 'weight' else 'beta'}", False
    return f"bert/{module}/{'kernel' if leaf == 'weight' else 'bias'}", leaf == "weight"


def tf1_variable_names(num_layers: int) -> list[str]:
    """The weight variables google-research/bert's ``BertModel`` has."""
    names = [f"bert/embeddings/{table}" for table in
             ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    names += ["bert/embeddings/LayerNorm/gamma", "bert/embeddings/LayerNorm/beta"]
    for layer in range(num_layers):
        prefix = f"bert/encoder/layer_{layer}"
        for dense in ("attention/self/query", "attention/self/key", "attention/self/value",
                      "attention/output/dense", "intermediate/dense", "output/dense"):
            names += [f"{prefix}/{dense}/kernel", f"{prefix}/{dense}/bias"]
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            names += [f"{prefix}/{norm}/gamma", f"{prefix}/{norm}/beta"]
    return names + ["bert/pooler/dense/kernel", "bert/pooler/dense/bias"]


def write_tf1_bert_checkpoint(hf_folder: Path, out_folder: Path) -> Path:
    """Writes a Hugging Face BERT folder in the google-research/bert TF1 layout.

    ``out_folder`` gets ``bert_config.json``, ``vocab.txt`` and ``bert_model.ckpt.index`` /
    ``.data-00000-of-00001`` with the same weights under TF1 names (kernels ``[in, out]``),
    plus ``global_step``, an MLM output bias and an Adam slot that loaders must skip. The
    checkpoint is written with ``tf.raw_ops.SaveV2``, no TF1 graph code.

    Args:
        hf_folder: A folder from ``make_tiny_checkpoint("bert", ...)`` or conftest's ``make_tiny_bert``.
        out_folder: Where to write; created if missing.

    Returns:
        ``out_folder``.
    """
    import tensorflow as tf
    from safetensors.numpy import load_file

    out_folder.mkdir(parents=True, exist_ok=True)
    hf_config = json.loads((hf_folder / "config.json").read_text())
    config = {key: hf_config[key] for key in TF1_CONFIG_KEYS}
    (out_folder / "bert_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if (hf_folder / "vocab.txt").is_file():
        shutil.copyfile(hf_folder / "vocab.txt", out_folder / "vocab.txt")
    else:
        import transformers

        vocab = transformers.AutoTokenizer.from_pretrained(str(hf_folder)).get_vocab()
        (out_folder / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n")

    variables: dict[str, np.ndarray] = {}
    for name, value in load_file(str(hf_folder / "model.safetensors")).items():
        converted = _tf1_name(name)
        if converted:
            tf1_name, transpose = converted
            variables[tf1_name] = np.ascontiguousarray(value.T if transpose else value, dtype=np.float32)
    expected = tf1_variable_names(config["num_hidden_layers"])
    assert sorted(variables) == sorted(expected), sorted(set(variables) ^ set(expected))
    # What a pretraining checkpoint holds besides the encoder.
    variables["global_step"] = np.array(1000, dtype=np.int64)
    variables["cls/predictions/output_bias"] = np.zeros([config["vocab_size"]], dtype=np.float32)
    variables["bert/embeddings/word_embeddings/adam_m"] = np.zeros_like(
        variables["bert/embeddings/word_embeddings"])

    prefix = out_folder / TF1_CHECKPOINT_NAME
    names = sorted(variables)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(variables[name]) for name in names])
    shapes = tf.train.load_checkpoint(str(prefix)).get_variable_to_shape_map()
    assert shapes == {name: list(variables[name].shape) for name in names}, shapes
    return out_folder
