"""task.add_special_tokens: the tokenizer and the word-embedding table grow, and both travel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import int32_inputs, restored_model, run_export, run_train

from tfft import backbones
from tfft.data.tokenization import add_special_tokens, load_tokenizer
from tfft.errors import TfftError

MARKERS = ["<e1>", "</e1>", "<e2>", "</e2>"]


def test_markers_become_single_tokens_the_tokenizer_never_splits(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    size = len(tokenizer)
    assert add_special_tokens(tokenizer, MARKERS) == 4 and len(tokenizer) == size + 4
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("the <e1>dog</e1> and <e2>cat</e2>")["input_ids"])
    assert pieces == ["[CLS]", "the", "<e1>", "dog", "</e1>", "and", "<e2>", "cat", "</e2>", "[SEP]"]
    assert add_special_tokens(tokenizer, ["<e1>", "the"]) == 0  # Known tokens keep their ids.
    with pytest.raises(TfftError, match=r"task\.add_special_tokens holds ' <e3>'; give non-empty strings"):
        add_special_tokens(tokenizer, [" <e3>"])


def test_grown_table_keeps_every_weight_and_draws_new_rows_like_the_others(tiny_bert):
    import keras

    keras.utils.set_random_seed(3)
    backbone = backbones.from_pretrained(str(tiny_bert))
    old = backbone.embeddings.word_embeddings.embeddings.numpy()
    grown = backbones.resize_vocabulary(backbone, len(old) + 400)
    table = grown.embeddings.word_embeddings.embeddings.numpy()
    assert grown.vocab_size == grown.hf_config["vocab_size"] == len(old) + 400
    np.testing.assert_array_equal(table[:len(old)], old)
    new = table[len(old):]
    # Drawn from the old rows' distribution: close mean and spread, all rows different.
    assert np.abs(new.mean(0) - old.mean(0)).max() < 4 * old.std(0).max() / np.sqrt(400) + 1e-3
    np.testing.assert_allclose(new.std(0), old.std(0), rtol=0.25)
    assert len(np.unique(new.round(6), axis=0)) == 400
    ids = np.array([[2, 10, 11, 3, 0]], np.int32)
    inputs = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.sign(ids)}
    np.testing.assert_array_equal(grown(inputs)["sequence_output"], backbone(inputs)["sequence_output"])


def test_added_tokens_train_and_export_to_pytorch_with_the_grown_vocabulary(tiny_bert, tmp_path):
    import torch
    import transformers

    rows = [f"the <e1>{a}</e1> is {b} <e2>{c}</e2>\t{int(a == 'dog')}"
            for a in ("dog", "cat") for b in ("good", "bad", "great") for c in ("film", "plot")] * 4
    data = tmp_path / "data.tsv"
    data.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    model_dir = tmp_path / "model"
    overrides = (f"task.init_checkpoint={tiny_bert},task.train_data.input_path={data},"
                 f"task.validation_data.input_path={data},task.max_seq_length=24,trainer.epochs=1,"
                 f"trainer.learning_rate=1e-3,task.add_special_tokens=[{','.join(MARKERS)}]")
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={overrides}")
    size = json.loads((tiny_bert / "config.json").read_text())["vocab_size"]
    assert json.loads((model_dir / "assets" / "config.json").read_text())["vocab_size"] == size + 4
    assert load_tokenizer(model_dir / "assets").convert_tokens_to_ids(MARKERS) == list(range(size, size + 4))

    export = tmp_path / "hf"
    run_export("--format=hf", f"--model_dir={model_dir}", f"--export_dir={export}")
    torch_model = transformers.AutoModelForSequenceClassification.from_pretrained(str(export)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(export))
    batch = tokenizer(["the <e1>dog</e1> is good <e2>film</e2>", "a <e2>cat</e2>"], padding=True,
                      return_tensors="pt")
    assert (batch["input_ids"] >= size).sum() == 6
    with torch.no_grad():
        theirs = torch_model(**batch).logits.numpy()
    model, _ = restored_model(model_dir)
    ours = model(int32_inputs(batch), training=False)
    assert np.abs(np.asarray(ours) - theirs).max() <= 1e-4
    table = model.get_layer("backbone").embeddings.word_embeddings.embeddings.numpy()
    np.testing.assert_allclose(torch_model.bert.embeddings.word_embeddings.weight.detach().numpy(), table)
