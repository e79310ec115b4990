"""tools/sweep.py (seeds x grid of tfft-train runs, summarised) and the runs' HParams data."""

from __future__ import annotations

import json
import statistics

import pytest
import tensorflow as tf
from conftest import REPO, load_tool, run_train, write_sentiment_tsv
from tensorboard.plugins.hparams import metadata as hparams_metadata

from tfft.config import build_config
from tfft.tasks import get_task


@pytest.fixture(scope="module")
def sweep():
    return load_tool("sweep")


def test_grid_points_are_the_cross_product(sweep):
    grid = sweep.parse_grid(["trainer.learning_rate=2e-5, 5e-5", "trainer.epochs=2,3"])
    points = sweep.grid_points(grid)
    assert [point.name for point in points] == [
        "learning_rate=2e-5__epochs=2", "learning_rate=2e-5__epochs=3",
        "learning_rate=5e-5__epochs=2", "learning_rate=5e-5__epochs=3"]
    assert points[1].overrides == {"trainer.learning_rate": "2e-5", "trainer.epochs": "3"}
    assert sweep.grid_points([]) == [sweep.Point("base", {})]
    with pytest.raises(sweep.SweepError, match=r"^--grid 'trainer.epochs' is not KEY=V1,V2,\.\.\.; e\.g\."):
        sweep.parse_grid(["trainer.epochs"])
    with pytest.raises(sweep.SweepError, match=r"^--grid names 'trainer.epochs' twice"):
        sweep.parse_grid(["trainer.epochs=1", "trainer.epochs=2"])


def test_point_summary_counts_failures_and_runs_that_did_not_learn(sweep):
    majority = {"accuracy": 0.6, "f1": 0.0, "matthews_corrcoef": 0.0}
    runs = [{"seed": 1, "status": "finished", "results": {"accuracy": 0.9, "loss": 0.3, "num_examples": 10,
                                                          "eval_seconds": 1.0, "baseline": majority}},
            {"seed": 2, "status": "finished", "results": {"accuracy": 0.8, "loss": 0.4, "num_examples": 10,
                                                          "baseline": majority}},
            {"seed": 3, "status": "finished",
             "results": {"accuracy": 0.603, "loss": 0.7, "baseline": majority}},
            {"seed": 4, "status": "failed", "results": {}, "error": "error: out of memory"}]
    point = sweep.summarize_point(sweep.Point("base", {}), runs, "accuracy", "max")
    assert set(point["metrics"]) == {"accuracy", "loss"}  # Counts and timings are not metrics.
    stats = point["metrics"]["accuracy"]
    assert stats["n"] == 3 and stats["mean"] == pytest.approx((0.9 + 0.8 + 0.603) / 3)
    assert stats["sd"] == pytest.approx(statistics.stdev([0.9, 0.8, 0.603]))
    assert (stats["median"], stats["min"], stats["max"]) == (0.8, 0.603, 0.9)
    assert (point["finished"], point["failed"], point["failed_to_learn"]) == (3, 1, 1)
    # Lower is better: a loss at the baseline's level did not learn either.
    assert sweep.failed_to_learn({"loss": 1.0, "baseline": {"loss": 1.002}}, "loss", "min")
    assert not sweep.failed_to_learn({"loss": 0.5, "baseline": {"loss": 1.0}}, "loss", "min")
    assert not sweep.failed_to_learn({"f1": 0.0}, "f1", "max")  # No baseline: not counted.


def test_sweep_runs_resumes_and_summarises(sweep, tiny_bert, tmp_path):
    train = write_sentiment_tsv(tmp_path / "train.tsv", 64, seed=1)
    dev = write_sentiment_tsv(tmp_path / "dev.tsv", 32, seed=2)
    overrides = [f"task.init_checkpoint={tiny_bert},task.train_data.input_path={train},"
                 f"task.validation_data.input_path={dev},task.max_seq_length=16,trainer.epochs=1,"
                 "trainer.learning_rate=1e-3"]
    config = [str(REPO / "configs" / "glue" / "sst2.yaml")]
    output, lines = tmp_path / "sweep", []
    grid = sweep.parse_grid(["trainer.train_batch_size=8,0"])  # 0: every run of that point fails.
    first = sweep.run_sweep(output, config, overrides, ["1"], grid, report=lines.append)
    good, bad = first["points"]
    assert (good["name"], good["finished"], bad["failed"]) == ("train_batch_size=8", 1, 1)
    assert bad["runs"][0]["error"] == "tfft-train: error: trainer.train_batch_size must be at least 1, got 0"
    assert first["best"] == "train_batch_size=8" and first["main_metric"] == "accuracy"
    kept = (output / "train_batch_size=8" / "seed_1" / "eval_results.json").stat().st_mtime_ns

    # Rerun with a second seed: the finished run is kept, the new one runs.
    second = sweep.run_sweep(output, config, overrides, ["1", "2"], [("trainer.train_batch_size", ["8"])],
                             report=lines.append)
    (point,) = second["points"]
    assert [run.get("resumed", "") for run in point["runs"]] == ["kept", ""]
    assert (output / "train_batch_size=8" / "seed_1" / "eval_results.json").stat().st_mtime_ns == kept
    runs = [json.loads((output / point["name"] / f"seed_{seed}" / "eval_results.json").read_text())
            for seed in (1, 2)]
    stats = point["metrics"]["accuracy"]
    assert stats["mean"] == pytest.approx(statistics.fmean(run["accuracy"] for run in runs))
    assert stats["sd"] == pytest.approx(statistics.stdev(run["accuracy"] for run in runs))
    assert json.loads((output / "summary.json").read_text()) == json.loads(json.dumps(second))
    table = (output / "summary.md").read_text()
    assert f"| train_batch_size=8 | 2 | {stats['mean']:.4f} ± {stats['sd']:.4f} |" in table
    assert any(line.startswith("[1/2] train_batch_size=8 seed 1: finished (kept): accuracy ")
               for line in lines)
    # Each run's seed and settings are in its own HParams session.
    hparams = read_hparams(output / "train_batch_size=8" / "seed_2" / "logs" / "hparams")
    assert hparams["runtime.seed"] == 2 and hparams["trainer.train_batch_size"] == 8


def read_hparams(log_dir) -> dict:
    """The HParams session's values in an event file of ``log_dir``, read back as TensorBoard does."""
    values = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != hparams_metadata.PLUGIN_NAME:
                    continue
                content = value.metadata.plugin_data.content
                data = hparams_metadata.parse_session_start_info_plugin_data(content)
                for name, item in data.hparams.items():
                    kind = item.WhichOneof("kind")
                    values[name] = getattr(item, kind)
    return values


def read_scalars(log_dir) -> dict:
    scalars = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars[value.tag] = float(tf.make_ndarray(value.tensor))
    return scalars


def test_a_run_writes_its_hparams_and_final_metrics(tiny_bert, sentiment_data, tmp_path):
    train, dev = sentiment_data
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'run'}",
              f"--params_override=task.init_checkpoint={tiny_bert},task.train_data.input_path={train},"
              f"task.validation_data.input_path={dev},task.max_seq_length=16,trainer.epochs=1,"
              "trainer.learning_rate=3e-4,runtime.seed=7")
    hparams = read_hparams(tmp_path / "run" / "logs" / "hparams")
    assert hparams["trainer.learning_rate"] == pytest.approx(3e-4) and hparams["runtime.seed"] == 7
    assert hparams["task.type"] == "sentence_classification" and hparams["task.label_list"] == "['0', '1']"
    assert not any(name.startswith("task.train_data") for name in hparams)
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    scalars = read_scalars(tmp_path / "run" / "logs" / "hparams")
    assert scalars["accuracy"] == pytest.approx(results["accuracy"])
    assert "train_loss" in scalars and "num_examples" in scalars
    # The baseline: always the majority class of the validation labels.
    labels = [line.rsplit("\t", 1)[1] for line in dev.read_text().splitlines()[1:]]
    majority = max(labels.count("0"), labels.count("1")) / len(labels)
    assert results["baseline"]["accuracy"] == pytest.approx(majority)
    assert results["baseline"]["matthews_corrcoef"] == 0.0


def test_regression_baseline_is_the_mean_score(tmp_path):
    task = get_task(build_config([str(REPO / "configs" / "glue" / "stsb.yaml")]).task)

    class Scores:
        labels = tf.constant([1.0, 2.0, 4.0]).numpy()

    assert task.baseline_metrics(Scores) == {"loss": pytest.approx(14 / 9), "pearson": 0.0, "spearman": 0.0}


def test_an_interrupted_sweep_stops_its_run_and_the_same_command_resumes_it(tiny_bert, tmp_path):
    """SIGTERM mid-run ends the sweep and its training at once; rerunning continues from the backup."""
    import signal
    import subprocess
    import sys
    import time

    train = write_sentiment_tsv(tmp_path / "train.tsv", 32, seed=1)
    dev = write_sentiment_tsv(tmp_path / "dev.tsv", 16, seed=2)
    output = tmp_path / "sweep"
    command = [sys.executable, str(REPO / "tools" / "sweep.py"),
               f"--config_file={REPO / 'configs' / 'glue' / 'sst2.yaml'}",
               f"--params_override=task.init_checkpoint={tiny_bert},task.train_data.input_path={train},"
               f"task.validation_data.input_path={dev},task.max_seq_length=16,trainer.train_batch_size=8,"
               "trainer.epochs=60", "--seeds=1", f"--output_dir={output}"]
    sweep_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    backup = output / "base" / "seed_1" / "backup"
    deadline = time.monotonic() + 300
    # A finished backup: the .tmp- folder being written does not count (it is thrown away).
    while not (backup.is_dir() and any(backup.glob("step-*"))) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sweep_process.poll() is None, "the run ended before it could be interrupted"
    sweep_process.send_signal(signal.SIGTERM)
    sweep_process.wait(timeout=60)  # Before the fix it waited for the whole run.
    assert sweep_process.returncode != 0
    assert not (output / "base" / "seed_1" / "eval_results.json").exists()
    log = output / "base" / "seed_1.log"
    size = log.stat().st_size
    time.sleep(3)
    assert log.stat().st_size == size, "the training went on after the sweep stopped"

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    train_results = json.loads((output / "base" / "seed_1" / "train_results.json").read_text())
    assert train_results["resumed_from"]["epoch"] > 1 and train_results["epochs"] == 60
    summary = json.loads((output / "summary.json").read_text())
    assert summary["points"][0]["finished"] == 1 and "[1/1] base seed 1: finished: accuracy" in resumed.stdout
