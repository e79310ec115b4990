"""LoRA fine-tuning: what trains, merged checkpoints and exports, resuming, refused settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import restored_model, run_cli, run_train
from test_cli_errors import assert_one_line_error
from test_resume import evaluated, kill_after_backup
from tiny_checkpoints import FAMILIES, make_tiny_checkpoint

from tfft import modeling
from tfft.backbones.checkpoint import open_checkpoint
from tfft.config import task_config
from tfft.tasks import get_task


def settings(tiny_bert, data, **extra) -> str:
    values = {
        "task.init_checkpoint": tiny_bert, "task.train_data.input_path": data[0],
        "task.validation_data.input_path": data[1], "task.max_seq_length": 32, "trainer.epochs": 3,
        "trainer.train_batch_size": 16, "trainer.learning_rate": 3e-2, "trainer.lr_reference_width": 0,
        "trainer.lora_rank": 4, **extra,
    }
    return ",".join(f"{key}={value}" for key, value in values.items())


@pytest.fixture(scope="module")
def lora_run(tiny_bert, sentiment_data, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("lora") / "model"
    run = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
                    f"--params_override={settings(tiny_bert, sentiment_data)}")
    return model_dir, run


def pretrained_model(checkpoint, task_type="sentence_classification"):
    """The task model freshly built from ``checkpoint`` (its head drawn at random)."""
    modeling.set_precision("float32")
    task = get_task(task_config(task_type, init_checkpoint=str(checkpoint), num_labels=2,
                                max_seq_length=32))
    opened = open_checkpoint(str(checkpoint))
    model, backbone = modeling.build_task_model(task, opened.config(), opened)
    return model, backbone


def test_only_the_adapters_and_the_head_train(lora_run, tiny_bert):
    model_dir, run = lora_run
    # 2 layers x (query, value) x (A [32, 4] + B [4, 32]) = 1,024, and the classifier 32 x 2 + 2 = 66.
    assert "LoRA rank 4 on query, value: training 1,090 of 21,676 parameters (5.03%)" in run.stderr
    trained, _ = restored_model(model_dir)
    start, _ = pretrained_model(tiny_bert)
    changed = {before.path for before, after in zip(start.weights, trained.weights, strict=True)
               if not np.array_equal(before.numpy(), after.numpy())}
    # The checkpoint holds merged kernels: only the LoRA-adapted ones and the head differ from the start.
    adapted = {f"encoder_layer_{i}/attention/{name}/kernel" for i in (0, 1) for name in ("query", "value")}
    assert changed == adapted | {"head/kernel", "head/bias"}, changed
    assert json.loads((model_dir / "eval_results.json").read_text())["accuracy"] > 0.75  # chance: 0.5


def test_the_merged_checkpoint_evaluates_as_the_unmerged_training_model(lora_run):
    model_dir, _ = lora_run
    during_training = json.loads((model_dir / "eval_results.json").read_text())
    reevaluated = run_train(f"--model_dir={model_dir}", "--mode=eval").results
    assert reevaluated["num_examples"] == during_training["num_examples"] == 96
    assert reevaluated["accuracy"] == during_training["accuracy"]
    assert reevaluated["loss"] == pytest.approx(during_training["loss"], abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_merged_weights_give_the_outputs_of_the_unmerged_model(family, tmp_path):
    checkpoint = make_tiny_checkpoint(family, tmp_path / family)
    model, backbone = pretrained_model(checkpoint)
    added = backbone.enable_lora(8, 16.0, ["query", "value", "intermediate", "output"])
    rng = np.random.default_rng(0)
    for variable in added:  # B starts at zero: draw both so that the update is not zero.
        variable.assign(rng.normal(0, 0.05, variable.shape).astype("float32"))
    inputs = {"input_ids": rng.integers(5, 50, (3, 12)).astype("int32"),
              "token_type_ids": np.zeros((3, 12), "int32"), "attention_mask": np.ones((3, 12), "int32")}
    unmerged = np.asarray(model(inputs, training=False))
    path = tmp_path / "merged.weights.h5"
    model.save_weights(str(path))  # As tfft's checkpoints are written: Dense layers save merged kernels.
    plain, _ = pretrained_model(checkpoint)
    plain.load_weights(str(path))
    assert not [weight for weight in plain.weights if "lora" in weight.path]
    merged = np.asarray(plain(inputs, training=False))
    np.testing.assert_allclose(merged, unmerged, atol=1e-5)
    fresh = np.asarray(pretrained_model(checkpoint)[0](inputs, training=False))
    assert np.abs(merged - fresh).max() > 1e-3  # the update is in the file


def test_a_lora_run_killed_after_a_backup_resumes_to_the_uninterrupted_result(tiny_bert, sentiment_data,
                                                                               tmp_path):
    override = settings(tiny_bert, sentiment_data, **{"trainer.backup_steps": 7,
                                                      "runtime.deterministic": "true"})

    def arguments(model_dir):
        return ["--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
                f"--params_override={override}"]

    run_cli("tfft.cli.train", *arguments(tmp_path / "uninterrupted"))
    model_dir = tmp_path / "killed"
    newest = kill_after_backup(arguments(model_dir), model_dir, 37)
    assert newest % 30  # mid-epoch
    rerun = run_cli("tfft.cli.train", *arguments(model_dir))
    assert f"resuming from {model_dir / 'backup' / f'step-{newest:09d}'}" in rerun.stderr
    assert evaluated(model_dir) == evaluated(tmp_path / "uninterrupted")  # exactly, every COMPARED metric


@pytest.mark.parametrize(("extra", "message"), [
    ({"trainer.lora_targets": "[query,attention]"},
     r"trainer.lora_targets \['query', 'attention'\] must name Dense layers of the BertBackbone encoder: "
     r"attention_output, intermediate, key, output, pooler, query, value$"),
    ({"trainer.trainable_encoder_layers": 1},
     r"trainer.lora_rank trains LoRA updates of a frozen backbone; it cannot be combined with "
     r"trainer.trainable_encoder_layers or trainer.reinit_top_layers"),
    ({"trainer.lora_rank": -2}, r"trainer.lora_rank must be at least 0, got -2$"),
])
def test_lora_settings_that_cannot_work_are_refused(extra, message, tiny_bert, sentiment_data, tmp_path):
    model_dir = tmp_path / "model"
    process = run_cli("tfft.cli.train", "--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
                      f"--params_override={settings(tiny_bert, sentiment_data, **extra)}", check=False)
    assert_one_line_error(process, "tfft-train", message)
    assert not (model_dir / "checkpoints").exists()



def test_the_lora_only_export_is_a_peft_adapter_giving_the_runs_outputs(lora_run, tiny_bert, tmp_path):
    import peft
    import torch
    import transformers
    from safetensors.numpy import load_file
    from test_hf_export import tfft_outputs

    model_dir, _ = lora_run
    export_dir = tmp_path / "adapter"
    process = run_cli("tfft.cli.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                      "--lora_only")
    assert f"LoRA adapter (PEFT) written to {export_dir}" in process.stdout
    tensors = load_file(str(export_dir / "adapter_model.safetensors"))
    modules = [f"bert.encoder.layer.{i}.attention.self.{name}" for name in ("query", "value") for i in (0, 1)]
    names = [f"{module}.lora_{part}.weight" for module in modules for part in "AB"]
    assert sorted(tensors) == sorted(f"base_model.model.{name}"
                                     for name in [*names, "classifier.weight", "classifier.bias"])
    assert tensors[f"base_model.model.{modules[0]}.lora_A.weight"].shape == (4, 32)
    assert tensors[f"base_model.model.{modules[0]}.lora_B.weight"].shape == (32, 4)
    config = json.loads((export_dir / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["task_type"]) == (4, 4, "SEQ_CLS")
    assert config["target_modules"] == modules and config["modules_to_save"] == ["classifier"]

    ours, batch = tfft_outputs(model_dir, ["the movie is good", "awful plot , boring acting", "great fun"])
    base = transformers.AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    theirs = peft.PeftModel.from_pretrained(base, str(export_dir)).eval()
    with torch.no_grad():
        logits = theirs(**{name: torch.tensor(value) for name, value in batch.items()}).logits
    np.testing.assert_allclose(logits.numpy(), ours, atol=1e-4)


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra"])
def test_adapters_of_families_whose_task_class_keeps_the_pooler_in_its_head(family, sentiment_data, tmp_path):
    """RoBERTa, ELECTRA (classifier.dense) and DistilBERT (pre_classifier): PEFT saves the pooler whole."""
    import peft
    import torch
    import transformers
    from test_hf_export import tfft_outputs

    checkpoint = make_tiny_checkpoint(family, tmp_path / family)
    model_dir, export_dir = tmp_path / "model", tmp_path / "adapter"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings(checkpoint, sentiment_data, **{'trainer.epochs': 1})}")
    run_cli("tfft.cli.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--lora_only")
    config = json.loads((export_dir / "adapter_config.json").read_text())
    assert config["modules_to_save"] == (["classifier", "pre_classifier"] if family == "distilbert"
                                         else ["classifier"])
    assert len(config["target_modules"]) == 4  # query and value of two layers

    ours, batch = tfft_outputs(model_dir, ["the movie is good", "awful plot , boring acting"])
    if family == "distilbert":
        batch.pop("token_type_ids")
    base = transformers.AutoModelForSequenceClassification.from_pretrained(str(checkpoint), num_labels=2)
    theirs = peft.PeftModel.from_pretrained(base, str(export_dir)).eval()
    with torch.no_grad():
        logits = theirs(**{name: torch.tensor(value) for name, value in batch.items()}).logits
    np.testing.assert_allclose(logits.numpy(), ours, atol=1e-4)


def test_lora_only_export_of_a_run_without_lora_is_refused(tiny_bert, sentiment_data, tmp_path):
    model_dir = tmp_path / "model"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings(tiny_bert, sentiment_data, **{'trainer.lora_rank': 0})},"
              "trainer.epochs=1")
    process = run_cli("tfft.cli.export", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'adapter'}",
                      "--lora_only", check=False)
    assert_one_line_error(process, "tfft-export", rf"--lora_only: '{model_dir}' was not trained with LoRA "
                                                  r"\(its trainer.lora_rank is 0\); export the whole model "
                                                  "without --lora_only$")


def test_a_run_starts_from_the_base_checkpoint_plus_an_exported_adapter(lora_run, tiny_bert, sentiment_data,
                                                                        tmp_path):
    model_dir, _ = lora_run
    adapter = tmp_path / "adapter"
    run_cli("tfft.cli.export", f"--model_dir={model_dir}", f"--export_dir={adapter}", "--lora_only")
    # One epoch at a rate too small to move anything: the run evaluates the adapter's model.
    again = tmp_path / "again"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={again}",
              f"--params_override={settings(tiny_bert, sentiment_data)},trainer.lora_adapter={adapter},"
              "trainer.epochs=1,trainer.learning_rate=1e-12")
    before, after = (json.loads((folder / "eval_results.json").read_text()) for folder in (model_dir, again))
    assert after["accuracy"] == before["accuracy"]
    assert after["loss"] == pytest.approx(before["loss"], abs=1e-5)

    override = f"{settings(tiny_bert, sentiment_data)},trainer.lora_adapter={adapter},trainer.lora_rank=8"
    mismatched = run_cli("tfft.cli.train", "--config_file=configs/glue/sst2.yaml",
                         f"--params_override={override}", f"--model_dir={tmp_path / 'other'}", check=False)
    message = (rf"trainer.lora_adapter '{adapter}' holds rank 4, alpha 4.0 on 4 layers; this run has rank 8, "
               "alpha 8.0 on 4: set trainer.lora_rank, lora_alpha and lora_targets to the adapter's$")
    assert_one_line_error(mismatched, "tfft-train", message)
