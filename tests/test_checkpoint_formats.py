"""Checkpoint formats beyond safetensors, tools/convert_checkpoint.py, and their errors.

Conversions run the tool's ``convert`` in this process (conftest.run_convert); the TF1
conversion and the tool's errors run the command itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_convert
from test_backbone import assert_matches, copy_checkpoint, edit_config, random_batch, torch_bert
from tiny_checkpoints import make_tiny_checkpoint, write_tf1_bert_checkpoint

from tfft import backbones
from tfft.errors import TfftError


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    return make_tiny_checkpoint("bert", tmp_path_factory.mktemp("bert") / "hf")


@pytest.fixture(scope="module")
def bert_torch(bert_folder):
    return torch_bert(bert_folder)


@pytest.fixture(scope="module")
def tf1_folder(bert_folder, tmp_path_factory) -> Path:
    return write_tf1_bert_checkpoint(bert_folder, tmp_path_factory.mktemp("bert") / "tf1")


@pytest.fixture(scope="module")
def batch(bert_folder):
    return random_batch(json.loads((bert_folder / "config.json").read_text())["vocab_size"], [11, 6, 9])


@pytest.fixture(scope="module")
def keras_folder(bert_folder, tmp_path_factory) -> Path:
    """``bert_folder`` converted to a Keras folder (copy it before changing it)."""
    output = tmp_path_factory.mktemp("bert") / "keras"
    run_convert(f"--input={bert_folder}", f"--output={output}", "--output_format=keras")
    return output


def convert(*args: str) -> subprocess.CompletedProcess:
    """Runs the tools/convert_checkpoint.py command."""
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "convert_checkpoint.py"), *args],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def last_line(process) -> str:
    return process.stderr.strip().splitlines()[-1]


# --- PyTorch pickles, bfloat16 --------------------------------------------------------------


def save_torch_bin(folder: Path, target: Path, dtype=None) -> Path:
    """``folder`` re-saved as ``pytorch_model.bin`` (no safetensors)."""
    import torch
    from safetensors.torch import load_file

    target = copy_checkpoint(folder, target, weights=False)
    state = load_file(str(folder / "model.safetensors"))
    torch.save({k: v.to(dtype) if dtype else v for k, v in state.items()}, str(target / "pytorch_model.bin"))
    return target


def test_pytorch_bin_loads_with_torch(bert_folder, bert_torch, batch, tmp_path):
    folder = save_torch_bin(bert_folder, tmp_path / "bin")
    assert_matches(backbones.from_pretrained(str(folder)), bert_torch, batch)


def test_pytorch_bin_without_torch_says_how_to_convert(bert_folder, tmp_path, monkeypatch):
    folder = save_torch_bin(bert_folder, tmp_path / "bin")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError.
    with pytest.raises(TfftError, match=r"pytorch_model\.bin' is a PyTorch pickle, which needs PyTorch to "
                                        r"read: pip install torch, or convert it .*convert_checkpoint\.py"):
        backbones.from_pretrained(str(folder))


def test_pickle_with_code_is_refused(bert_folder, tmp_path):
    import torch

    folder = copy_checkpoint(bert_folder, tmp_path / "evil", weights=False)
    torch.save({"weights": Path("not a tensor")}, str(folder / "pytorch_model.bin"))
    with pytest.raises(TfftError, match=r"cannot be loaded safely .*holds more than tensors"):
        backbones.from_pretrained(str(folder))


def test_bfloat16_safetensors_load_as_float32(bert_folder, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    folder = copy_checkpoint(bert_folder, tmp_path / "bf16")
    state = {k: v.to(torch.bfloat16) for k, v in load_file(str(bert_folder / "model.safetensors")).items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    backbone = backbones.from_pretrained(str(folder))
    expected = state["encoder.layer.1.intermediate.dense.weight"].to(torch.float32).numpy()
    kernel = backbone.encoder_layers[1].intermediate.kernel.numpy()
    np.testing.assert_array_equal(kernel, expected.T)


# --- TF1 ------------------------------------------------------------------------------------


def test_tf1_folder_without_checkpoint_files(tf1_folder, tmp_path):
    folder = tmp_path / "tf1"
    folder.mkdir()
    for name in ("bert_config.json", "vocab.txt"):
        (folder / name).write_bytes((tf1_folder / name).read_bytes())
    with pytest.raises(TfftError, match=r"has bert_config\.json but no bert_model\.ckpt\.index; copy the "):
        backbones.from_pretrained(str(folder))


def test_truncated_tf1_checkpoint(tf1_folder, tmp_path):
    folder = copy_checkpoint(tf1_folder, tmp_path / "tf1")
    data = next(folder.glob("bert_model.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(TfftError, match=r"TF1 checkpoint '.*bert_model\.ckpt' cannot be read .*complete"):
        backbones.from_pretrained(str(folder))


def test_tf1_with_mismatched_config(tf1_folder, tmp_path):
    folder = copy_checkpoint(tf1_folder, tmp_path / "tf1")
    config = json.loads((folder / "bert_config.json").read_text())
    (folder / "bert_config.json").write_text(json.dumps({**config, "intermediate_size": 40}))
    with pytest.raises(TfftError, match=r"tensor 'bert\.encoder\.layer\.0\.intermediate\.dense\.weight' has "
                                        r"shape \(37, 32\) but config\.json implies \(40, 32\)"):
        backbones.from_pretrained(str(folder))


# --- config / weights disagreement ---------------------------------------------------------


def test_extra_layers_in_the_weights_are_named(bert_folder, tmp_path):
    folder = edit_config(copy_checkpoint(bert_folder, tmp_path / "one_layer"), num_hidden_layers=1)
    with pytest.raises(TfftError, match=r"has tensor 'bert\.encoder\.layer\.1\.attention\.output\.LayerNorm\."
                                        r"bias' of shape \(32,\) that config\.json does not account for"):
        backbones.from_pretrained(str(folder))


def test_config_missing_a_required_key(bert_folder, tmp_path):
    folder = copy_checkpoint(bert_folder, tmp_path / "no_heads")
    config = json.loads((folder / "config.json").read_text())
    del config["num_attention_heads"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TfftError, match=r"config\.json \(model_type 'bert'\) lacks 'num_attention_heads'"):
        backbones.from_pretrained(str(folder))


def test_relative_position_embeddings_are_refused(bert_folder, tmp_path):
    folder = edit_config(copy_checkpoint(bert_folder, tmp_path / "relative"),
                         position_embedding_type="relative_key")
    with pytest.raises(TfftError, match=r"position_embedding_type 'relative_key' is not supported"):
        backbones.from_pretrained(str(folder))


@pytest.mark.parametrize("change, reason", [
    ({"hidden_size": 64}, r".*"),
    ({"num_hidden_layers": 1}, r"it holds 39 variables, the model has 23"),
    ({"num_hidden_layers": 3}, r"it holds 39 variables, the model has 55"),
])
def test_keras_folder_with_other_config(keras_folder, tmp_path, change, reason):
    output = copy_checkpoint(keras_folder, tmp_path / "keras")
    edit_config(output, **change)
    with pytest.raises(TfftError, match=rf"cannot load '.*backbone\.weights\.h5' \({reason}\); it does not "
                                        r"match .*config\.json or is damaged"):
        backbones.from_pretrained(str(output))


# --- tools/convert_checkpoint.py ------------------------------------------------------------


def test_tf1_to_hf_loads_in_transformers(tf1_folder, bert_folder, bert_torch, batch, tmp_path):
    import torch
    import transformers

    output = tmp_path / "hf"
    process = convert(f"--input={tf1_folder / 'bert_model.ckpt'}", f"--output={output}")
    assert process.returncode == 0, process.stderr[-2000:]
    assert f"wrote hf checkpoint to {output}" in process.stdout
    model = transformers.AutoModel.from_pretrained(str(output)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(output))
    reference = transformers.AutoTokenizer.from_pretrained(str(bert_folder))
    assert tokenizer("the movie was good")["input_ids"] == reference("the movie was good")["input_ids"]
    inputs = {k: torch.from_numpy(v.astype(np.int64)) for k, v in batch.items()}
    with torch.no_grad():
        ours, theirs = model(**inputs), bert_torch(**inputs)
    real = batch["attention_mask"].astype(bool)
    assert np.abs(ours.last_hidden_state.numpy()[real] - theirs.last_hidden_state.numpy()[real]).max() < 1e-5
    assert np.abs(ours.pooler_output.numpy() - theirs.pooler_output.numpy()).max() < 1e-5


@pytest.mark.parametrize("family", ["roberta", "electra", "albert", "distilbert"])
def test_hf_to_keras_to_hf_round_trip(family, tmp_path):
    import transformers

    source = make_tiny_checkpoint(family, tmp_path / "source")
    keras_dir, hf_dir = tmp_path / "keras", tmp_path / "hf"
    for args in ([f"--input={source}", f"--output={keras_dir}", "--output_format=keras"],
                 [f"--input={keras_dir}", f"--output={hf_dir}"]):
        process = run_convert(*args)
        assert process.returncode == 0, process.stderr[-2000:]
    assert (keras_dir / "backbone.weights.h5").is_file() and (hf_dir / "model.safetensors").is_file()
    original = transformers.AutoModel.from_pretrained(str(source)).state_dict()
    converted = transformers.AutoModel.from_pretrained(str(hf_dir)).state_dict()
    assert set(converted) == set(original)
    for key, value in original.items():
        np.testing.assert_allclose(converted[key].numpy(), value.numpy(), atol=1e-7, err_msg=key)


def test_pytorch_bin_converts_to_safetensors(bert_folder, tmp_path):
    folder = save_torch_bin(bert_folder, tmp_path / "bin")
    process = run_convert(f"--input={folder}", f"--output={tmp_path / 'out'}")
    assert process.returncode == 0, process.stderr[-2000:]
    assert "max |difference| 0.00e+00" in process.stdout


def test_convert_refuses_a_non_empty_output(bert_folder, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    process = convert(f"--input={bert_folder}", f"--output={tmp_path / 'out'}")
    assert process.returncode == 1
    assert last_line(process) == f"convert_checkpoint: error: --output '{tmp_path / 'out'}' is not empty; " \
                                 "choose a new folder"


def test_convert_unknown_model_type(bert_folder, tmp_path):
    folder = edit_config(copy_checkpoint(bert_folder, tmp_path / "t5"), model_type="t5")
    process = convert(f"--input={folder}", f"--output={tmp_path / 'out'}")
    assert process.returncode == 1
    assert last_line(process) == ("convert_checkpoint: error: checkpoint model_type 't5' is not supported; "
                                  "supported: albert, bert, distilbert, electra, roberta, xlm-roberta")
