"""Knowledge distillation: soft-target losses, students made of a teacher's layers, teacher runs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import make_tiny_bert, restored_model, run_train
from test_cli_errors import assert_one_line_error
from test_question_answering import overrides as qa_overrides
from test_question_answering import qa_data, qa_run  # noqa: F401 - fixtures
from test_token_classification import ner_data, ner_run  # noqa: F401 - fixtures
from test_token_classification import overrides as ner_overrides
from tiny_checkpoints import make_tiny_checkpoint

from tfft import backbones, modeling
from tfft.backbones.checkpoint import open_checkpoint
from tfft.config import task_config
from tfft.data.features import IGNORED_LABEL
from tfft.errors import TfftError
from tfft.tasks import get_task


def _log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _kl(student, teacher, temperature, axis=-1):
    """KL(teacher_T || student_T) * T**2 in float64."""
    t, s = _log_softmax(teacher / temperature, axis), _log_softmax(student / temperature, axis)
    return (np.exp(t) * (t - s)).sum(axis=axis) * temperature**2


def _loss(task_type, student, teacher, labels, temperature, **config):
    task = get_task(task_config(task_type, **config))
    return float(task.distillation_loss(student.astype("float32"), teacher.astype("float32"),
                                        labels, temperature))


RNG = np.random.default_rng(0)


def test_sentence_classification_distils_the_softened_class_distribution():
    student, teacher = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3)) * 3
    expected = _kl(student, teacher, 2.0).mean()
    assert _loss("sentence_classification", student, teacher, np.zeros(5, "int32"), 2.0,
                 num_labels=3) == pytest.approx(expected, rel=1e-5)
    assert _loss("sentence_classification", teacher, teacher, np.zeros(5, "int32"), 2.0,
                 num_labels=3) == pytest.approx(0.0, abs=1e-6)


def test_token_classification_distils_only_the_labelled_sub_words():
    student, teacher = RNG.normal(size=(2, 6, 4)), RNG.normal(size=(2, 6, 4))
    ignored = IGNORED_LABEL
    labels = np.array([[ignored, 1, 2, ignored, 0, ignored],
                       [ignored, 3, ignored, ignored, ignored, ignored]], "int32")
    expected = _kl(student, teacher, 3.0)[labels != IGNORED_LABEL].mean()
    assert _loss("token_classification", student, teacher, labels, 3.0,
                 label_list=["O", "B-X", "I-X", "B-Y"]) == pytest.approx(expected, rel=1e-5)


def test_question_answering_distils_start_and_end_over_the_window_tokens():
    student, teacher = RNG.normal(size=(3, 7, 2)), RNG.normal(size=(3, 7, 2)) * 2
    student[:, 5:], teacher[:, 5:] = -10000.0, -10000.0  # Padding, masked as the head masks it.
    expected = _kl(student, teacher, 2.0, axis=1).mean()
    assert _loss("question_answering", student, teacher, np.zeros((3, 2), "int32"),
                 2.0) == pytest.approx(expected, rel=1e-5)


def test_regression_distils_the_teachers_scores():
    student, teacher = RNG.normal(size=6), RNG.normal(size=6)
    assert _loss("sentence_regression", student, teacher, np.zeros(6, "float32"),
                 4.0) == pytest.approx(((student - teacher) ** 2).mean(), rel=1e-5)


def test_multi_label_classification_distils_each_labels_sigmoid():
    student, teacher = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    p, q = 1 / (1 + np.exp(-teacher / 2)), 1 / (1 + np.exp(-student / 2))
    expected = ((p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))) * 4).mean()
    assert _loss("multi_label_classification", student, teacher, np.zeros((4, 3), "float32"), 2.0,
                 label_list=["a", "b", "c"]) == pytest.approx(expected, rel=1e-5)


# --- students made of a teacher's layers ----------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_a_student_of_chosen_layers_gives_the_outputs_of_pytorch_with_those_layers(family, tmp_path):
    import torch
    import transformers

    folder = make_tiny_checkpoint(family, tmp_path / family)
    opened = open_checkpoint(str(folder))
    teacher = backbones.from_config(opened.config(), name="backbone")
    opened.load_into(teacher)
    student = backbones.keep_encoder_layers(teacher, [1])
    assert len(student.encoder_layers) == 1
    assert student.hf_config[student.layer_count_key] == 1
    reference = transformers.AutoModel.from_pretrained(str(folder)).eval()
    layers = reference.transformer.layer if family == "distilbert" else reference.encoder.layer
    del layers[0]  # The PyTorch model with only layer 1 left.
    ids = RNG.integers(5, 40, (2, 9))
    mask = np.ones((2, 9), "int64")
    mask[1, 6:] = 0
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
    outputs = student({"input_ids": ids.astype("int32"), "token_type_ids": np.zeros((2, 9), "int32"),
                       "attention_mask": mask.astype("int32")})["sequence_output"]
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(outputs)[real], expected.numpy()[real], atol=1e-4)


def test_student_layers_are_checked(tmp_path):
    folder = make_tiny_bert(tmp_path / "bert")
    opened = open_checkpoint(str(folder))
    backbone = backbones.from_config(opened.config(), name="backbone")
    for bad in ([], [0, 2], [1, 1], [-1]):
        with pytest.raises(TfftError, match=r"task.student_layers .* must name distinct encoder layers of "
                                            r"task.init_checkpoint, 0 to 1, e.g. \[0\]$"):
            backbones.keep_encoder_layers(backbone, bad)
    albert = make_tiny_checkpoint("albert", tmp_path / "albert")
    opened = open_checkpoint(str(albert))
    with pytest.raises(TfftError, match="shares its layers across depth"):
        backbones.keep_encoder_layers(backbones.from_config(opened.config(), name="backbone"), [0])


# --- runs with a teacher ----------------------------------------------------------------------


def settings(checkpoint, train, dev, **extra) -> str:
    values = {
        "task.init_checkpoint": checkpoint, "task.train_data.input_path": train,
        "task.validation_data.input_path": dev, "task.max_seq_length": 32, "trainer.epochs": 3,
        "trainer.train_batch_size": 16, "trainer.learning_rate": 1e-3, "trainer.lr_reference_width": 0,
        **extra,
    }
    return ",".join(f"{key}={value}" for key, value in values.items())


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, sentiment_data):
    """A tiny BERT of 3 layers trained on the synthetic sentiment data."""
    folder = tmp_path_factory.mktemp("teacher")
    checkpoint = make_tiny_bert(folder / "checkpoint", num_hidden_layers=3)
    model_dir = folder / "run"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings(checkpoint, *sentiment_data)}")
    return model_dir


def flipped(path, folder):
    """The sentiment TSV at ``path`` with every label flipped."""
    lines = path.read_text().splitlines()
    rows = [line.rsplit("\t", 1) for line in lines[1:]]
    target = folder / "flipped.tsv"
    target.write_text("\n".join([lines[0], *(f"{text}\t{1 - int(label)}" for text, label in rows)]) + "\n")
    return target


def test_a_student_of_the_teachers_layers_learns_from_the_teacher_not_the_labels(teacher, sentiment_data,
                                                                               tmp_path):
    accuracy = json.loads((teacher / "eval_results.json").read_text())["accuracy"]
    assert accuracy > 0.9
    wrong = flipped(sentiment_data[0], tmp_path)  # Labels that teach the opposite of the truth.
    results = {}
    for alpha in (1.0, 0.0):
        model_dir = tmp_path / f"alpha{alpha}"
        run = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
                        "--params_override=" + settings(teacher, wrong, sentiment_data[1], **{
                            "task.teacher_model_dir": teacher, "task.student_layers": "[0,2]",
                            "trainer.distill_alpha": alpha, "trainer.distill_temperature": 2.0}))
        assert f"distilling from {teacher}/checkpoints/final.weights.h5" in run.stderr
        results[alpha] = json.loads((model_dir / "eval_results.json").read_text())["accuracy"]
    # From the teacher alone the student predicts as the teacher does; from the flipped labels alone,
    # the opposite.
    assert results[1.0] > 0.9 and results[0.0] < 0.1, results
    # The saved student is 2 layers and nothing of the teacher: it restores on its own.
    model_dir = tmp_path / "alpha1.0"
    config = json.loads((model_dir / "assets" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    student, _ = restored_model(model_dir)
    with h5py.File(model_dir / "checkpoints" / "final.weights.h5") as file:
        stored = []
        file.visititems(lambda name, item: stored.append(name) if isinstance(item, h5py.Dataset) else None)
    assert len(stored) == len(student.weights)
    assert run_train(f"--model_dir={model_dir}", "--mode=eval").results["accuracy"] == results[1.0]


def test_a_student_from_another_checkpoint_starts_with_its_own_layers(teacher, sentiment_data, tmp_path):
    checkpoint = make_tiny_bert(tmp_path / "student", seed=3)
    model_dir = tmp_path / "run"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              "--params_override=" + settings(checkpoint, *sentiment_data, **{
                  "task.teacher_model_dir": teacher, "trainer.epochs": 1}))
    student, _ = restored_model(model_dir)
    assert len(student.get_layer("backbone").encoder_layers) == 2


@pytest.mark.parametrize("extra, message", [
    ({"trainer.distill_alpha": 1.5},
     r"trainer.distill_alpha must be in \[0, 1\], got 1.5; 1.0 learns from the teacher alone, 0.0 from the "
     "labels alone$"),
    ({"trainer.distill_temperature": 0}, "trainer.distill_temperature must be positive, got 0"),
    ({"task.student_layers": "[0,5]"}, r"task.student_layers \[0, 5\] must name distinct encoder layers of "
                                       r"task.init_checkpoint, 0 to 2, e.g. \[0, 2\]$"),
])
def test_bad_distillation_settings_stop_with_one_line(teacher, sentiment_data, tmp_path, extra, message):
    process = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'run'}",
                        "--params_override=" + settings(teacher, *sentiment_data,
                                                        **{"task.teacher_model_dir": teacher, **extra}),
                        check=False)
    assert_one_line_error(process, "tfft-train", message)


def test_teachers_that_cannot_teach_this_run_are_refused(teacher, sentiment_data, tmp_path):
    other_vocabulary = make_tiny_checkpoint("roberta", tmp_path / "roberta")
    cases = [
        (tmp_path / "nothing", "sst2",
         rf"task.teacher_model_dir '{tmp_path / 'nothing'}' holds no run \(params.yaml is missing\); "
         "point it at a finished tfft-train model_dir of the same task$"),
        (teacher, "stsb",
         rf"task.teacher_model_dir '{teacher}' is a sentence_classification run; the teacher must be a run "
         "of this task, sentence_regression$"),
    ]
    for teacher_dir, config, message in cases:
        process = run_train(f"--config_file=configs/glue/{config}.yaml", f"--model_dir={tmp_path / 'run'}",
                            "--params_override=" + settings(teacher, *sentiment_data, **{
                                "task.teacher_model_dir": teacher_dir, "task.text_fields": "[sentence]",
                                "task.label_field": "label"}), check=False)
        assert_one_line_error(process, "tfft-train", message)
        assert not (tmp_path / "run" / "params.yaml").exists()
    process = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'run'}",
                        "--params_override=" + settings(other_vocabulary, *sentiment_data,
                                                        **{"task.teacher_model_dir": teacher}), check=False)
    assert_one_line_error(process, "tfft-train",
                          rf"task.teacher_model_dir '{teacher}' has another vocabulary \(118 tokens\)")
    labels = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'run'}",
                       "--params_override=" + settings(teacher, *sentiment_data, **{
                           "task.teacher_model_dir": teacher, "task.label_list": "['1','0']"}), check=False)
    assert_one_line_error(labels, "tfft-train", rf"task.teacher_model_dir '{teacher}' predicts labels "
                                                r"\['0', '1'\], this run \['1', '0'\]; give the student the "
                                                "teacher's task.label_list$")


def test_masked_lm_runs_take_no_teacher(tmp_path):
    task = get_task(task_config("masked_lm"))
    from tfft.training.distillation import load_teacher

    with pytest.raises(TfftError, match="^task masked_lm cannot learn from a teacher; unset "
                                        "task.teacher_model_dir$"):
        load_teacher(str(tmp_path), task, None)


def test_a_student_of_a_runs_layers_holds_those_layers_weights(teacher):
    modeling.set_precision("float32")
    task = get_task(task_config("sentence_classification", init_checkpoint=str(teacher),
                                student_layers=[2], num_labels=2, max_seq_length=32))
    opened = open_checkpoint(str(teacher))
    _, backbone = modeling.build_task_model(task, opened.config(), opened)
    full, _ = restored_model(teacher)
    chosen = full.get_layer("backbone").encoder_layers[2]
    assert len(backbone.encoder_layers) == 1
    for kept, original in zip(backbone.encoder_layers[0].weights, chosen.weights, strict=True):
        np.testing.assert_array_equal(kept.numpy(), original.numpy())


@pytest.mark.slow  # Trains its own tagging and QA teachers.
@pytest.mark.parametrize("task_type", ["token_classification", "question_answering"])
def test_token_and_span_students_learn_from_their_teacher(task_type, request, tmp_path):
    """A one-layer student of a 2-layer tagging or QA teacher, from the teacher's soft targets alone."""
    names = {"token_classification": ("ner_run", "ner_data", ner_overrides, "configs/ner/conll2003.yaml"),
             "question_answering": ("qa_run", "qa_data", qa_overrides, "configs/squad/squad_v1.yaml")}
    run_name, data_name, overrides, config = names[task_type]
    teacher_dir, data = request.getfixturevalue(run_name), request.getfixturevalue(data_name)
    model_dir = tmp_path / "student"
    settings = overrides(teacher_dir, data, **{
        "task.teacher_model_dir": teacher_dir, "task.student_layers": "[1]", "trainer.distill_alpha": 1.0})
    run = run_train(f"--config_file={config}", f"--model_dir={model_dir}", f"--params_override={settings}")
    assert f"distilling from {teacher_dir}/checkpoints/final.weights.h5" in run.stderr
    teacher = json.loads((teacher_dir / "eval_results.json").read_text())
    student = json.loads((model_dir / "eval_results.json").read_text())
    assert student["f1"] > 0.75 * teacher["f1"], (student["f1"], teacher["f1"])
    assert len(restored_model(model_dir)[0].get_layer("backbone").encoder_layers) == 1
