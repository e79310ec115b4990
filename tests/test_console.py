"""What a person at the console sees: a progress bar in a terminal, log lines elsewhere, a quiet start."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, run_train

from tfft.errors import TfftError
from tfft.training import callbacks
from tfft.training.callbacks import ConsoleMode, Progress, ProgressBar, TrainingScalars, console_mode

# --- where progress goes -------------------------------------------------------------------------


class Stream(io.StringIO):
    """A stream that is a terminal or not."""

    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("stdout", "stderr", "expected"), [
    (True, True, ConsoleMode(progress_bar=True, step_log_lines=False)),  # A terminal.
    (True, False, ConsoleMode(progress_bar=True, step_log_lines=True)),  # 2>train.log keeps the lines.
    (False, True, ConsoleMode(progress_bar=False, step_log_lines=True)),  # >out.txt: no bar.
    (False, False, ConsoleMode(progress_bar=False, step_log_lines=True)),  # CI, nohup, files.
])
def test_a_bar_where_stdout_is_a_terminal(stdout, stderr, expected):
    assert console_mode(Stream(stdout), Stream(stderr), environ={}, modules={}) == expected


def test_a_notebook_kernel_gets_the_bar_although_its_streams_are_no_terminals():
    mode = console_mode(Stream(False), Stream(False), environ={}, modules={"ipykernel": object()})
    assert mode == ConsoleMode(progress_bar=True, step_log_lines=False)


@pytest.mark.parametrize(("value", "expected"), [
    ("1", ConsoleMode(progress_bar=True, step_log_lines=False)),
    ("on", ConsoleMode(progress_bar=True, step_log_lines=False)),
    ("0", ConsoleMode(progress_bar=False, step_log_lines=True)),
    ("False", ConsoleMode(progress_bar=False, step_log_lines=True)),
])
def test_environment_variable_decides(value, expected):
    environ = {"TFFT_PROGRESS_BAR": value}
    for tty in (True, False):
        assert console_mode(Stream(tty), Stream(tty), environ=environ, modules={}) == expected


def test_unknown_environment_value_is_an_error():
    with pytest.raises(TfftError, match=r"TFFT_PROGRESS_BAR='maybe' is not 1 or 0"):
        console_mode(Stream(True), Stream(True), environ={"TFFT_PROGRESS_BAR": "maybe"}, modules={})


def test_streams_without_isatty_or_closed_are_no_terminals():
    closed = Stream(True)
    closed.close()
    assert not console_mode(object(), closed, environ={}, modules={}).progress_bar


# --- the bar ---------------------------------------------------------------------------------------


class FakeOptimizer:
    learning_rate = 2e-5


class FakeModel:
    optimizer = FakeOptimizer()


def screen(text: str) -> list[str]:
    """The terminal's lines after ``text``: each line's last redraw, without colors."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [line.split("\r")[-1].replace("\b", "").rstrip() for line in text.split("\n")]


@pytest.fixture
def clock(monkeypatch):
    """A settable time.time for the bar and Keras' Progbar."""
    now = [0.0]
    read = staticmethod(lambda: now[0])
    fake = type("Clock", (), {"time": read, "perf_counter": read})
    from keras.src.utils import progbar

    monkeypatch.setattr(progbar, "time", fake)
    monkeypatch.setattr(callbacks, "time", fake)
    return now


def bar_callback(progress: Progress) -> ProgressBar:
    bar = ProgressBar(progress)
    bar.set_model(FakeModel())
    return bar


def test_bar_of_a_resumed_epoch_starts_at_its_trained_batches(capsys, clock):
    """Epoch 2 of 2 resumed after 5 of its 8 batches (gradient accumulation 2): the bar counts the
    epoch's batches from 6 to 8, its time per batch only from the batches it saw."""
    progress = Progress(epoch=1, first_batch=5, batches_per_epoch=8, epochs=2, accumulation=2)
    bar = bar_callback(progress)
    bar.on_epoch_begin(1)
    for batch, seconds in enumerate([10.0, 11.0, 12.0]):  # The first batch compiles.
        clock[0] = seconds
        bar.on_train_batch_end(batch, {"accuracy": 0.75, "loss": 0.5})
        if batch == 1:
            middle = screen(capsys.readouterr().out)
    bar.on_epoch_end(1, {})
    assert middle[0] == "Epoch 2/2, resuming after batch 5"
    # 7 of 8 batches: 1 s per batch after the first, so 1 s to go.
    expected = r"7/8 ━+ 1s 1s/batch - loss: 0\.5000 - accuracy: 0\.7500 - lr: 2\.0000e-05"
    assert re.fullmatch(expected, middle[1]), middle
    final = screen(capsys.readouterr().out)
    assert re.fullmatch(r"8/8 ━+ 12s 1s/batch - loss: 0\.5000 .*", final[0]), final
    assert final[1:] == [""]  # One line break: the bar's.


def test_bar_is_redrawn_at_most_every_interval_and_reads_the_learning_rate_only_then(capsys, clock):
    reads = []
    optimizer = type("Optimizer", (), {"learning_rate": property(lambda self: reads.append(1) or 1e-3)})()
    bar = ProgressBar(Progress(batches_per_epoch=100), interval=1.0)
    bar.set_model(type("Model", (), {"optimizer": optimizer})())
    bar.on_epoch_begin(0)
    for batch in range(100):
        clock[0] = 1000 + batch * 0.25
        bar.on_train_batch_end(batch, {"loss": 1.0})
    assert len(reads) == 26  # After batches 1, 5, 9, ..., 97 and the last.
    assert screen(capsys.readouterr().out)[-2].startswith("100/100 ")


def test_a_log_record_during_the_epoch_starts_a_new_line(capsys, clock):
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    root.addHandler(handler)
    try:
        bar = bar_callback(Progress(batches_per_epoch=4))
        bar.on_epoch_begin(0)
        clock[0] = 10.0
        bar.on_train_batch_end(0, {"loss": 1.0})
        logging.warning("a backup was written")
        clock[0] = 11.0
        bar.on_train_batch_end(1, {"loss": 1.0})
        callbacks.end_progress_line()  # As tfft-train does before an error message.
        logging.warning("after the bar")
    finally:
        root.removeHandler(handler)
    lines = screen(capsys.readouterr().out)
    assert lines[0] == "Epoch 1/1"
    assert lines[1].startswith("1/4 ") and lines[2] == "a backup was written"
    assert lines[3].startswith("2/4 ") and lines[4:] == ["after the bar", ""]
    assert not any(isinstance(f, callbacks._EndLineBeforeLogs) for f in handler.filters)


def test_without_step_log_lines_the_scalars_are_still_written(monkeypatch, caplog):
    scalars = TrainingScalars(None, Progress(batches_per_epoch=10), 32, 320, every_steps=2, epochs=1,
                              log_steps=False)
    written = []
    monkeypatch.setattr(scalars, "_write", lambda step, logs, window: written.append(step) or None)
    with caplog.at_level(logging.INFO):
        for batch in range(5):
            scalars._last_logged_step = written[-1] if written else 0
            scalars.on_train_batch_end(batch, {"loss": 1.0})
    assert written == [2, 4]
    assert not [r for r in caplog.records if "step" in r.getMessage()]


@pytest.mark.parametrize("bar", ["1", "0"])
def test_training_shows_a_bar_or_log_lines(monkeypatch, capsys, tmp_path, tiny_bert, sentiment_data, bar):
    monkeypatch.setenv("TFFT_PROGRESS_BAR", bar)
    overrides = (f"task.init_checkpoint={tiny_bert},task.train_data.input_path={sentiment_data[0]},"
                 f"task.validation_data.input_path={sentiment_data[1]},task.train_data.max_examples=64,"
                 "task.validation_data.max_examples=16,task.max_seq_length=32,trainer.epochs=2,"
                 "trainer.train_batch_size=16,trainer.log_every_steps=1")
    run = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path}",
                    f"--params_override={overrides}")
    lines = screen(capsys.readouterr().out)
    step_lines = re.findall(r"epoch \d/2, step \d+: loss", run.stderr)
    if bar == "1":
        assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]
        finals = [line for line in lines if line.startswith("4/4 ")]
        assert len(finals) == 2 and all(" - loss: " in line and " - lr: " in line for line in finals)
        assert not step_lines
    else:
        assert lines == [""]
        assert len(step_lines) == 7  # Every step but the first (tracing, left out of the timing).
    assert "epoch 2 validation: loss" in run.stderr


# --- a quiet start ---------------------------------------------------------------------------------


#: What the ``tensorflow`` wheel writes at start on a machine without a GPU, and lines to keep.
TENSORFLOW_START = "".join(f"{line}\n" for line in [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796529432.357536   14387 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796529432.357922   14387 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "/x/y.py:3: DeprecationWarning: a Python warning",
    "W1206 03:57:16.162276 140627111332736 some.cc:12] a warning",
    "E0000 00:00:1796529436.152902   14387 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "E0000 00:00:1796529436.152902   14387 other.cc:52] an error",
])


def test_start_lines_are_filtered_as_tf_cpp_min_log_level_says():
    from tfft.cli.quiet import filter_start_lines

    lines = TENSORFLOW_START.splitlines(keepends=True)
    assert filter_start_lines(TENSORFLOW_START, 0) == TENSORFLOW_START
    assert filter_start_lines(TENSORFLOW_START, 1) == "".join([lines[0], *lines[3:]])
    assert filter_start_lines(TENSORFLOW_START, 2) == "".join([lines[3], lines[6]])
    assert filter_start_lines(TENSORFLOW_START, 3) == lines[3]
    # With a CUDA driver, a failed cuInit is an error worth showing.
    with_driver = "".join(line for line in lines if "cuda drivers" not in line)
    assert "failed call to cuInit" in filter_start_lines(with_driver, 2)


def test_filtered_stderr_holds_cpp_output_and_lets_all_through_on_errors(capfd):
    from tfft.cli.quiet import filtered_stderr

    with filtered_stderr(2) as written:
        os.write(2, TENSORFLOW_START.encode())
        assert written() == TENSORFLOW_START
    assert capfd.readouterr().err == "/x/y.py:3: DeprecationWarning: a Python warning\n" + \
        TENSORFLOW_START.splitlines(keepends=True)[6]
    with pytest.raises(ImportError), filtered_stderr(2):
        os.write(2, TENSORFLOW_START.encode())
        raise ImportError("no tensorflow")
    assert capfd.readouterr().err == TENSORFLOW_START


START = "import sys; sys.modules['torch'] = None; {}import transformers, tensorflow as tf; tf.constant(1)"


def python(code: str, environ: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=environ)


def test_entry_points_start_without_notices():
    """Importing tfft.cli (as the entry points do) keeps TensorFlow's start-up lines and transformers'
    "PyTorch was not found" notice out; without it both show."""
    environ = {name: value for name, value in os.environ.items()
               if name not in ("TF_CPP_MIN_LOG_LEVEL", "TRANSFORMERS_NO_ADVISORY_WARNINGS")}
    process = python(START.format("import tfft.cli; "), environ)
    assert process.returncode == 0 and process.stderr == "", process.stderr
    api = python(START.format("import tfft; "), environ)  # The Python API: no PyTorch notice either.
    assert api.returncode == 0 and "PyTorch was not found" not in api.stderr, api.stderr
    plain = python(START.format(""), environ)
    assert plain.returncode == 0 and "PyTorch was not found" in plain.stderr, plain.stderr
