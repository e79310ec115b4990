"""Every supported family against transformers' PyTorch base model with the same weights.

Also the tiny checkpoint factories themselves, RoBERTa position ids under extra padding,
and original TF1 BERT checkpoints (folder or prefix, with their bare ``vocab.txt``).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_checkpoints import FAMILIES, make_tiny_checkpoint, write_tf1_bert_checkpoint

TOLERANCE = 1e-4
# Families whose Hugging Face base model has a pooler (dense + tanh on the first token).
WITH_HF_POOLER = ("bert", "roberta", "xlm-roberta", "albert")
# Families whose Hugging Face model takes no token_type_ids.
WITHOUT_TOKEN_TYPES = ("distilbert",)
HF_MODEL_CLASSES = {
    "bert": "BertModel", "roberta": "RobertaModel", "xlm-roberta": "XLMRobertaModel",
    "distilbert": "DistilBertModel", "electra": "ElectraModel", "albert": "AlbertModel",
}
# family -> (first, separator between the segments, last) special tokens of a sentence pair.
PAIR_TEMPLATES = {
    "bert": ("[CLS]", ["[SEP]"], "[SEP]"),
    "distilbert": ("[CLS]", ["[SEP]"], "[SEP]"),
    "electra": ("[CLS]", ["[SEP]"], "[SEP]"),
    "albert": ("[CLS]", ["[SEP]"], "[SEP]"),
    "roberta": ("<s>", ["</s>", "</s>"], "</s>"),
    "xlm-roberta": ("<s>", ["</s>", "</s>"], "</s>"),
}

# Rows of different lengths; the second pair member is long so the batch is visibly padded.
PAIRS = [
    ("the movie was good", "it is a great film !"),
    ("bad", "the acting was awful and the plot was boring , not fun at all"),
    ("a man plays guitar", "a woman is playing on the guitar"),
]
SENTENCES = ["the best film", "a dog and a cat , playing with a man on the guitar", "this movie is not fun"]
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")


# --- helpers -------------------------------------------------------------------------------


def encode(tokenizer, first: list[str], second: list[str] | None = None) -> dict[str, np.ndarray]:
    """A padded int32 batch as the tokenizer makes it."""
    encoded = tokenizer(first, second, padding=True, return_tensors="np", return_token_type_ids=True,
                        return_attention_mask=True)
    return {name: encoded[name].astype(np.int32) for name in INPUT_NAMES}


def keras_outputs(backbone, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import keras

    outputs = backbone(inputs, training=False)
    return (keras.ops.convert_to_numpy(outputs["sequence_output"]),
            keras.ops.convert_to_numpy(outputs["pooled_output"]))


def torch_outputs(model, inputs: dict[str, np.ndarray], family: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(last_hidden_state, pooler_output or None)`` of a PyTorch base model."""
    import torch

    names = [name for name in INPUT_NAMES if not (family in WITHOUT_TOKEN_TYPES and name == "token_type_ids")]
    with torch.no_grad():
        outputs = model(**{name: torch.from_numpy(inputs[name].astype(np.int64)) for name in names})
    pooled = getattr(outputs, "pooler_output", None)
    return outputs.last_hidden_state.numpy(), None if pooled is None else pooled.numpy()


def max_difference(ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Max |ours - theirs|, over positions where ``mask`` is 1 if given."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    if mask is not None:
        ours, theirs = ours[mask.astype(bool)], theirs[mask.astype(bool)]
    return float(np.abs(ours - theirs).max())


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """``checkpoint(family)``: the family's tiny checkpoint folder, built once per module."""
    root = tmp_path_factory.mktemp("families")

    @functools.cache
    def build(family: str) -> Path:
        return make_tiny_checkpoint(family, root / family)

    return build


@pytest.fixture(scope="module")
def hf(checkpoint):
    """``hf(family)``: ``(AutoTokenizer, AutoModel in eval mode)`` of the family's checkpoint."""
    import transformers

    @functools.cache
    def load(family: str):
        folder = str(checkpoint(family))
        return (transformers.AutoTokenizer.from_pretrained(folder),
                transformers.AutoModel.from_pretrained(folder).eval())

    return load


@pytest.fixture(scope="module")
def backbone(checkpoint):
    """``backbone(family)``: tfft's backbone for the family's checkpoint."""
    from tfft import backbones

    @functools.cache
    def load(family: str):
        return backbones.from_pretrained(str(checkpoint(family)))

    return load


def family_batch(tokenizer, kind: str) -> dict[str, np.ndarray]:
    if kind == "pairs":
        return encode(tokenizer, [first for first, _ in PAIRS], [second for _, second in PAIRS])
    return encode(tokenizer, SENTENCES)


# --- the factories -------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_checkpoint_reloads_with_auto_classes(family, checkpoint, hf):
    tokenizer, model = hf(family)
    config = json.loads((checkpoint(family) / "config.json").read_text())
    assert type(model).__name__ == HF_MODEL_CLASSES[family]
    assert config["model_type"] == family
    assert tokenizer.is_fast
    assert config["vocab_size"] == len(tokenizer) == model.get_input_embeddings().num_embeddings
    assert config["pad_token_id"] == tokenizer.pad_token_id
    if family in ("roberta", "xlm-roberta"):
        assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
        assert config["max_position_embeddings"] >= 64 + config["pad_token_id"] + 1
    if family == "albert":
        specials = tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4])
        assert specials == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
        groups = config["num_hidden_layers"], config["num_hidden_groups"], config["inner_group_num"]
        assert groups == (4, 2, 2)
    if family in ("albert", "electra"):
        assert config["embedding_size"] != config["hidden_size"]

    # The sentence-pair template and token types of the family.
    encoded = tokenizer("the movie was good", "a great film", return_token_type_ids=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    first, separator, last = PAIR_TEMPLATES[family]
    assert tokens[0] == first and tokens[-1] == last, tokens
    start = tokens.index(separator[0])
    assert tokens[start:start + len(separator)] == separator and tokens.count(last) == len(separator) + 1
    types = encoded["token_type_ids"]
    if family in ("roberta", "xlm-roberta"):
        assert set(types) == {0}
    else:
        assert types == [0] * (start + 1) + [1] * (len(tokens) - start - 1), (tokens, types)


def test_albert_activation_is_visible(checkpoint, hf):
    """Precondition: a backbone that used exact GELU instead of gelu_new would fail the parity test."""
    import transformers

    tokenizer, model = hf("albert")
    assert model.config.hidden_act == "gelu_new"
    exact = transformers.AutoModel.from_pretrained(str(checkpoint("albert")), hidden_act="gelu").eval()
    inputs = family_batch(tokenizer, "pairs")
    gap = max_difference(torch_outputs(model, inputs, "albert")[0], torch_outputs(exact, inputs, "albert")[0],
                         inputs["attention_mask"])
    assert gap > 3 * TOLERANCE


# --- parity --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pairs", "single"])
@pytest.mark.parametrize("family", FAMILIES)
def test_backbone_matches_transformers(family, kind, hf, backbone):
    tokenizer, model = hf(family)
    inputs = family_batch(tokenizer, kind)
    mask = inputs["attention_mask"]
    # The batch really is padded, with rows of different lengths.
    assert mask.min() == 0 and len(set(mask.sum(axis=1).tolist())) == 3

    sequence, pooled = keras_outputs(backbone(family), inputs)
    expected_sequence, expected_pooled = torch_outputs(model, inputs, family)
    batch, length = inputs["input_ids"].shape
    hidden = model.config.hidden_size if family != "distilbert" else model.config.dim
    assert sequence.shape == (batch, length, hidden)
    assert pooled.shape == (batch, hidden)
    assert max_difference(sequence, expected_sequence, mask) <= TOLERANCE
    if family in WITH_HF_POOLER:
        assert max_difference(pooled, expected_pooled) <= TOLERANCE
    else:
        assert expected_pooled is None
        assert np.isfinite(pooled).all()


def test_roberta_positions_ignore_appended_padding(hf, backbone):
    tokenizer, model = hf("roberta")
    inputs = family_batch(tokenizer, "pairs")
    extra = 20  # The padded batch stays within the 64 positions the tiny model has.
    assert inputs["input_ids"].shape[1] + extra <= 64
    padded = {
        name: np.pad(value, ((0, 0), (0, extra)),
                     constant_values=tokenizer.pad_token_id if name == "input_ids" else 0)
        for name, value in inputs.items()
    }
    short_sequence, short_pooled = keras_outputs(backbone("roberta"), inputs)
    padded_sequence, padded_pooled = keras_outputs(backbone("roberta"), padded)
    length = inputs["input_ids"].shape[1]
    assert max_difference(padded_sequence[:, :length], short_sequence, inputs["attention_mask"]) <= 1e-5
    assert max_difference(padded_pooled, short_pooled) <= 1e-5
    # And the padded batch still matches PyTorch, which skips padding when numbering positions.
    expected_sequence, _ = torch_outputs(model, padded, "roberta")
    assert max_difference(padded_sequence, expected_sequence, padded["attention_mask"]) <= TOLERANCE


# --- TF1 BERT ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf1_folder(checkpoint, tmp_path_factory) -> Path:
    return write_tf1_bert_checkpoint(checkpoint("bert"), tmp_path_factory.mktemp("tf1") / "bert")


def test_tf1_checkpoint_layout(tf1_folder):
    import tensorflow as tf

    assert sorted(path.name for path in tf1_folder.iterdir()) == [
        "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index", "vocab.txt",
    ]
    shapes = tf.train.load_checkpoint(str(tf1_folder / "bert_model.ckpt")).get_variable_to_shape_map()
    assert shapes["bert/encoder/layer_1/intermediate/dense/kernel"] == [32, 37]
    extras = {"global_step", "cls/predictions/output_bias", "bert/embeddings/word_embeddings/adam_m"}
    assert extras <= set(shapes)


@pytest.mark.parametrize("target", ["folder", "prefix"])
def test_tf1_checkpoint_matches_transformers(target, tf1_folder, hf):
    from tfft import backbones

    path = tf1_folder if target == "folder" else tf1_folder / "bert_model.ckpt"
    tf1_backbone = backbones.from_pretrained(str(path))
    tokenizer, model = hf("bert")
    for kind in ("pairs", "single"):
        inputs = family_batch(tokenizer, kind)
        sequence, pooled = keras_outputs(tf1_backbone, inputs)
        expected_sequence, expected_pooled = torch_outputs(model, inputs, "bert")
        assert max_difference(sequence, expected_sequence, inputs["attention_mask"]) <= TOLERANCE
        assert max_difference(pooled, expected_pooled) <= TOLERANCE


def test_tf1_vocab_gives_the_same_tokenizer(tf1_folder, hf):
    from tfft.data.tokenization import load_tokenizer

    tokenizer = load_tokenizer(tf1_folder)
    reference, _ = hf("bert")
    assert tokenizer.is_fast
    for first, second in PAIRS:
        assert tokenizer(first)["input_ids"] == reference(first)["input_ids"]
        ours = tokenizer(first, second, return_token_type_ids=True)
        theirs = reference(first, second, return_token_type_ids=True)
        assert ours["input_ids"] == theirs["input_ids"] and ours["token_type_ids"] == theirs["token_type_ids"]
    # Uppercase input is lowercased, as the lowercase-only vocabulary implies.
    assert tokenizer("The Movie WAS good")["input_ids"] == reference("the movie was good")["input_ids"]
    for sentence in SENTENCES:
        assert tokenizer(sentence)["input_ids"] == reference(sentence)["input_ids"]


@pytest.mark.parametrize("family", FAMILIES)
def test_tfft_loads_the_tokenizer_autotokenizer_loads(family, checkpoint, hf):
    from tfft.data.tokenization import load_tokenizer

    ours, theirs = load_tokenizer(checkpoint(family)), hf(family)[0]
    assert type(ours) is type(theirs)
    pair = ("the movie was good", "a great film")
    assert ours(*pair, return_token_type_ids=True) == theirs(*pair, return_token_type_ids=True)


def test_loading_tokenizers_does_not_import_pytorch(checkpoint):
    """AutoTokenizer's imports bring in PyTorch when it is installed (about 1 s and 200 MB)."""
    folders = [str(checkpoint(family)) for family in FAMILIES]
    script = ("import sys; from tfft.data.tokenization import load_tokenizer\n"
              f"for folder in {folders!r}: load_tokenizer(folder)\n"
              "print('torch' in sys.modules, 'tensorflow' in sys.modules)")
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert process.stdout.split() == ["False", "False"], process.stderr[-2000:]
