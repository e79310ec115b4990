"""The BERT backbone against transformers' PyTorch ``BertModel`` with the same weights."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_bert

from tfft import backbones
from tfft.errors import TfftError

TOLERANCE = 1e-4

PAIRS = [
    ("the movie was good", "it is a great film"),
    ("bad", "the acting was awful and the plot was boring , not fun at all"),
    ("a man plays guitar", "a woman is playing on the guitar"),
]


# --- helpers -----------------------------------------------------------------------------


def tokenize_pairs(folder: Path, pairs) -> dict[str, np.ndarray]:
    """A padded int32 batch of sentence pairs, as the checkpoint's tokenizer makes it."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    encoded = tokenizer(
        [first for first, _ in pairs], [second for _, second in pairs], padding=True,
        return_tensors="np", return_token_type_ids=True, return_attention_mask=True,
    )
    return {name: encoded[name].astype(np.int32) for name in backbones.INPUT_NAMES}


def random_batch(vocab_size: int, lengths: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random ids, a padded mask for the given lengths and pair-style token types."""
    rng = np.random.default_rng(seed)
    batch, width = len(lengths), max(lengths)
    mask = (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int32)
    ids = rng.integers(5, vocab_size, size=(batch, width)).astype(np.int32) * mask
    ids[:, 0] = 2  # [CLS]
    types = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        types[row, length // 2:length] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def torch_outputs(model, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(last_hidden_state, pooler_output)`` of a PyTorch ``BertModel``."""
    import torch

    with torch.no_grad():
        outputs = model(**{name: torch.from_numpy(value.astype(np.int64)) for name, value in inputs.items()})
    return outputs.last_hidden_state.numpy(), outputs.pooler_output.numpy()


def torch_bert(folder: Path):
    import transformers

    return transformers.BertModel.from_pretrained(str(folder)).eval()


def keras_outputs(backbone, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    import keras

    outputs = backbone(inputs, training=False)
    return (keras.ops.convert_to_numpy(outputs["sequence_output"]),
            keras.ops.convert_to_numpy(outputs["pooled_output"]))


def assert_matches(backbone, reference, inputs: dict[str, np.ndarray]) -> None:
    """Shapes, and outputs at non-padding positions within TOLERANCE of the reference."""
    sequence, pooled = keras_outputs(backbone, inputs)
    expected_sequence, expected_pooled = torch_outputs(reference, inputs)
    batch, length = inputs["input_ids"].shape
    hidden = backbone.hf_config["hidden_size"]
    assert sequence.shape == (batch, length, hidden)
    assert pooled.shape == (batch, hidden)
    real = inputs["attention_mask"].astype(bool)
    assert np.abs(sequence[real] - expected_sequence[real]).max() <= TOLERANCE
    assert np.abs(pooled - expected_pooled).max() <= TOLERANCE


def copy_checkpoint(source: Path, target: Path, weights: bool = True) -> Path:
    """Copies a checkpoint folder, optionally without its weights file."""
    shutil.copytree(source, target, ignore=None if weights else shutil.ignore_patterns("*.safetensors"))
    return target


def rewrite_tensors(folder: Path, change) -> Path:
    """Applies ``change`` to the folder's state dict (a dict of numpy arrays) in place."""
    from safetensors.numpy import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    return folder


def edit_config(folder: Path, **values) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))
    return folder


# --- parity ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_backbone(tiny_bert):
    return backbones.from_pretrained(str(tiny_bert))


@pytest.fixture(scope="module")
def tiny_torch(tiny_bert):
    return torch_bert(tiny_bert)


def test_tiny_checkpoint_matches_pytorch_on_padded_pairs(tiny_bert, tiny_backbone, tiny_torch):
    inputs = tokenize_pairs(tiny_bert, PAIRS)
    # The batch really is padded pairs: both segments present, rows of different lengths.
    assert (inputs["token_type_ids"] == 1).any(axis=1).all()
    assert len(set(inputs["attention_mask"].sum(axis=1).tolist())) == len(PAIRS)
    assert isinstance(tiny_backbone, backbones.Backbone)
    assert_matches(tiny_backbone, tiny_torch, inputs)


def test_one_model_serves_several_sequence_lengths(tiny_backbone, tiny_torch):
    vocab_size = tiny_backbone.hf_config["vocab_size"]
    for lengths in ([7, 7], [19, 12, 5]):
        assert_matches(tiny_backbone, tiny_torch, random_batch(vocab_size, lengths, seed=len(lengths)))


def test_padding_does_not_change_real_positions(tiny_backbone):
    vocab_size = tiny_backbone.hf_config["vocab_size"]
    short = random_batch(vocab_size, [9])
    padded = {name: np.pad(value, ((0, 0), (0, 6))) for name, value in short.items()}
    short_sequence, short_pooled = keras_outputs(tiny_backbone, short)
    padded_sequence, padded_pooled = keras_outputs(tiny_backbone, padded)
    np.testing.assert_allclose(padded_sequence[:, :9], short_sequence, atol=1e-5)
    np.testing.assert_allclose(padded_pooled, short_pooled, atol=1e-5)


def test_inference_on_real_tokens_only_matches_pytorch_and_the_padded_path(tiny_bert, tiny_torch):
    """pack_real_tokens: the outputs of the padded path (here XLA-compiled, as jit_compile runs it)
    at real positions, 0 at padding, and PyTorch's."""
    import tensorflow as tf

    from tfft.backbones.layers import pack_real_tokens

    backbone = backbones.from_pretrained(str(tiny_bert))
    inputs = random_batch(backbone.hf_config["vocab_size"], [19, 12, 5])
    compiled = tf.function(lambda batch: backbone(batch, training=False), jit_compile=True)
    padded = compiled({name: tf.constant(value) for name, value in inputs.items()})["sequence_output"].numpy()
    pack_real_tokens(backbone)
    assert all(layer.packs_real_tokens for layer in backbone.encoder_layers)
    assert_matches(backbone, tiny_torch, inputs)
    sequence, _ = keras_outputs(backbone, inputs)
    real = inputs["attention_mask"].astype(bool)
    assert (sequence[~real] == 0).all()
    np.testing.assert_allclose(sequence[real], padded[real], atol=1e-5)


def test_minilm_matches_pytorch(minilm):
    pairs = [
        ("A man is playing a guitar.", "Someone plays an acoustic guitar on stage."),
        ("The cat sits outside.", "The new movie is awesome and everybody should see it twice."),
        ("How do I reset my password?", "Click 'Forgot password' on the login page."),
    ]
    inputs = tokenize_pairs(minilm, pairs)
    assert_matches(backbones.from_pretrained(str(minilm)), torch_bert(minilm), inputs)


def test_sequence_classification_checkpoint_loads_its_bert_submodule(tiny_bert, tmp_path):
    import torch
    import transformers
    from safetensors.numpy import load_file

    torch.manual_seed(3)
    classifier = transformers.BertForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=3)
    classifier.save_pretrained(str(tmp_path / "classifier"), safe_serialization=True)
    keys = set(load_file(str(tmp_path / "classifier" / "model.safetensors")))
    assert "bert.embeddings.word_embeddings.weight" in keys and "classifier.weight" in keys
    assert not any(key.startswith("embeddings.") for key in keys)

    backbone = backbones.from_pretrained(str(tmp_path / "classifier"))
    inputs = random_batch(backbone.hf_config["vocab_size"], [11, 6])
    assert_matches(backbone, classifier.bert.eval(), inputs)


def test_gelu_new_checkpoint_matches_pytorch(tmp_path):
    import transformers

    # Large weights put pre-activations where exact and tanh GELU differ visibly.
    folder = make_tiny_bert(tmp_path / "gelu_new", seed=4, hidden_act="gelu_new", initializer_range=0.5)
    reference = torch_bert(folder)
    inputs = random_batch(reference.config.vocab_size, [13, 8])
    exact = transformers.BertModel.from_pretrained(str(folder), hidden_act="gelu").eval()
    # Precondition: the test would notice a backbone that used exact GELU instead.
    gap = np.abs(torch_outputs(exact, inputs)[0] - torch_outputs(reference, inputs)[0]).max()
    assert gap > 3 * TOLERANCE

    assert_matches(backbones.from_pretrained(str(folder)), reference, inputs)


def test_sharded_checkpoint_matches_pytorch(tiny_bert, tiny_torch, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = copy_checkpoint(tiny_bert, tmp_path / "sharded", weights=False)
    tensors = load_file(str(tiny_bert / "model.safetensors"))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({key: tensors[key] for key in keys}, str(folder / shard))
        weight_map.update(dict.fromkeys(keys, shard))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": sum(v.nbytes for v in tensors.values())},
                    "weight_map": weight_map})
    )
    assert not (folder / "model.safetensors").exists()

    backbone = backbones.from_pretrained(str(folder))
    assert_matches(backbone, tiny_torch, random_batch(backbone.hf_config["vocab_size"], [10, 4]))


def test_checkpoint_without_pooler_loads_and_keeps_fresh_pooler(tiny_bert, tiny_torch, tmp_path, caplog):
    folder = rewrite_tensors(
        copy_checkpoint(tiny_bert, tmp_path / "no_pooler"),
        lambda tensors: [tensors.pop(key) for key in list(tensors) if key.startswith("pooler.")],
    )
    with caplog.at_level(logging.WARNING):
        backbone = backbones.from_pretrained(str(folder))
    assert re.search(r"has no pooler \(bert\.pooler\.dense\); pooled_output starts untrained", caplog.text)

    inputs = random_batch(backbone.hf_config["vocab_size"], [12, 7])
    sequence, pooled = keras_outputs(backbone, inputs)
    expected_sequence, expected_pooled = torch_outputs(tiny_torch, inputs)
    real = inputs["attention_mask"].astype(bool)
    assert np.abs(sequence[real] - expected_sequence[real]).max() <= TOLERANCE
    # The pooler keeps its initialisation: zero bias, not the checkpoint's.
    np.testing.assert_array_equal(np.asarray(backbone.pooler.bias), 0.0)
    assert np.abs(pooled - expected_pooled).max() > 10 * TOLERANCE


# --- checkpoint errors ---------------------------------------------------------------------


def test_folder_without_config_json(tiny_bert, tmp_path):
    folder = copy_checkpoint(tiny_bert, tmp_path / "no_config")
    (folder / "config.json").unlink()
    with pytest.raises(TfftError, match=rf"checkpoint folder '{re.escape(str(folder))}' has no config\.json"):
        backbones.from_pretrained(str(folder))


def test_config_json_that_is_not_json(tiny_bert, tmp_path):
    folder = copy_checkpoint(tiny_bert, tmp_path / "bad_config")
    (folder / "config.json").write_text('{\n  "model_type": "bert",\n  oops\n}\n')
    with pytest.raises(TfftError, match=r"config\.json:3' is not valid JSON"):
        backbones.from_pretrained(str(folder))


def test_folder_without_weights(tiny_bert, tmp_path):
    folder = copy_checkpoint(tiny_bert, tmp_path / "no_weights", weights=False)
    with pytest.raises(TfftError, match=r"has no model\.safetensors or pytorch_model\.bin; add the weights"):
        backbones.from_pretrained(str(folder))

    (folder / "pytorch_model.bin").write_bytes(b"\0" * 16)
    with pytest.raises(TfftError, match=r"pytorch_model\.bin' cannot be loaded safely .*re-save it with "
                                        r"save_pretrained\(safe_serialization=True\)"):
        backbones.from_pretrained(str(folder))


def test_unsupported_model_type_lists_supported_ones(tiny_bert, tmp_path):
    folder = edit_config(copy_checkpoint(tiny_bert, tmp_path / "gpt2"), model_type="gpt2")
    supported = "albert, bert, distilbert, electra, roberta, xlm-roberta"
    with pytest.raises(TfftError, match=rf"model_type 'gpt2' is not supported; supported: {supported}$"):
        backbones.from_pretrained(str(folder))


def test_tensor_with_wrong_shape_names_it_and_both_shapes(tiny_bert, tmp_path):
    key = "encoder.layer.1.intermediate.dense.weight"

    def widen(tensors):
        assert tensors[key].shape == (37, 32)
        tensors[key] = np.zeros((40, 32), np.float32)

    folder = rewrite_tensors(copy_checkpoint(tiny_bert, tmp_path / "wrong_shape"), widen)
    with pytest.raises(TfftError, match=rf"tensor 'bert\.{re.escape(key)}' has shape \(40, 32\) but "
                                        r"config\.json implies \(37, 32\)"):
        backbones.from_pretrained(str(folder))


def test_missing_tensor_is_named(tiny_bert, tmp_path):
    key = "encoder.layer.1.output.LayerNorm.weight"
    folder = rewrite_tensors(copy_checkpoint(tiny_bert, tmp_path / "missing"), lambda t: t.pop(key))
    with pytest.raises(TfftError, match=rf"lacks tensor 'bert\.{re.escape(key)}' \(expected shape \(32,\)\)"):
        backbones.from_pretrained(str(folder))


def test_nonexistent_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TfftError, match=r"checkpoint folder '\./nope' does not exist"):
        backbones.from_pretrained("./nope")


def test_hub_id_offline_cannot_be_fetched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TfftError, match=r"could not fetch checkpoint 'org/model' from the Hugging Face Hub"):
        backbones.from_pretrained("org/model")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_weights_file(tiny_bert, tmp_path, damage):
    folder = copy_checkpoint(tiny_bert, tmp_path / "corrupt")
    path = folder / "model.safetensors"
    data = path.read_bytes()
    garbage = b"this is not a safetensors file\n" * 20
    path.write_bytes(garbage if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(TfftError, match=rf"weights file '{re.escape(str(path))}' cannot be read"):
        backbones.from_pretrained(str(folder))


# --- freezing ------------------------------------------------------------------------------


def variable_ids(variables) -> set[int]:
    return {id(variable) for variable in variables}


@pytest.fixture
def fresh_backbone(tiny_bert):
    return backbones.from_config(json.loads((tiny_bert / "config.json").read_text()))


def test_zero_trainable_layers_freezes_the_whole_backbone(fresh_backbone):
    fresh_backbone.set_trainable_encoder_layers(0)
    assert fresh_backbone.trainable_weights == []
    assert len(fresh_backbone.non_trainable_weights) == len(fresh_backbone.weights) > 0


def test_one_trainable_layer_trains_top_layer_and_pooler(fresh_backbone):
    fresh_backbone.set_trainable_encoder_layers(1)
    top, pooler = fresh_backbone.encoder_layers[-1], fresh_backbone.pooler
    expected = variable_ids(top.weights) | variable_ids(pooler.weights)
    assert variable_ids(fresh_backbone.trainable_weights) == expected
    bottom = fresh_backbone.encoder_layers[0]
    frozen = variable_ids(fresh_backbone.embeddings.weights) | variable_ids(bottom.weights)
    assert frozen <= variable_ids(fresh_backbone.non_trainable_weights)


def test_minus_one_trains_everything(fresh_backbone):
    fresh_backbone.set_trainable_encoder_layers(-1)
    assert variable_ids(fresh_backbone.trainable_weights) == variable_ids(fresh_backbone.weights)
    assert len(fresh_backbone.trainable_weights) == 39


def test_minus_one_unfreezes_a_frozen_backbone(fresh_backbone):
    everything = variable_ids(fresh_backbone.weights)
    fresh_backbone.set_trainable_encoder_layers(0)
    fresh_backbone.set_trainable_encoder_layers(-1)
    assert variable_ids(fresh_backbone.trainable_weights) == everything
    assert fresh_backbone.non_trainable_weights == []
