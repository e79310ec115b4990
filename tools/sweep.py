r"""Runs ``tfft-train`` over seeds and a grid of settings, and summarises each point over its seeds.

Fine-tuning results move by points from seed to seed, so one run shows little. This runs
one ``tfft-train --mode=train_and_eval`` per (grid point, seed) under
``OUTPUT_DIR/POINT/seed_S`` (its log beside it, ``seed_S.log``) and writes
``OUTPUT_DIR/summary.json`` and ``summary.md``: per point, the mean ± sd (sample standard
deviation), median, min and max of every metric in the runs' ``eval_results.json``, how many
runs failed, how many failed to learn (main metric within 0.005 of what a model that
learned nothing scores, ``eval_results.json``'s ``baseline``: e.g. the majority class's
accuracy), and the best point by mean of the main metric.

Rerunning the same command resumes: finished runs (with ``eval_results.json``) are kept,
an interrupted run continues from its backup (``tfft-train``'s exact resume), failed runs
start again. Each run writes TensorBoard HParams data (``logs/hparams``):
``tensorboard --logdir=OUTPUT_DIR`` compares them in the HParams dashboard.

Example:
    python tools/sweep.py --config_file=configs/glue/stsb.yaml \
        --params_override=task.init_checkpoint=CK,task.train_data.input_path=D/train.tsv,\
task.validation_data.input_path=D/dev.tsv --seeds=1,2,3 \
        --grid=trainer.learning_rate=2e-5,5e-5 --grid=trainer.epochs=2,3 --output_dir=runs/stsb_sweep

``--grid=KEY=V1,V2,...`` (repeatable) sweeps a config key over values (the cross product of
all grids); values hold no commas. ``--parallel=N`` runs N at once (each uses every core it
is given: on a small machine, 1).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from absl import app, flags

#: How close to the baseline a run's main metric is to count as not having learned.
FAILED_TO_LEARN_MARGIN = 0.005
#: ``eval_results.json`` entries that are not metrics (counts, timings, paths).
BOOKKEEPING = re.compile(r"(^|_)(num_examples|examples_per_second|eval_seconds|checkpoint)$")

flags.DEFINE_multi_string("config_file", [], "tfft-train --config_file (repeatable).")
flags.DEFINE_multi_string("params_override", [], "tfft-train --params_override for every run (repeatable).")
flags.DEFINE_list("seeds", ["1", "2", "3"], "runtime.seed of the runs of each point.")
flags.DEFINE_multi_string("grid", [], "KEY=V1,V2,... : a config key and its values (repeatable).")
flags.DEFINE_string("output_dir", None, "Folder of the runs and the summary.")
flags.DEFINE_integer("parallel", 1, "Runs at once.")
flags.mark_flag_as_required("output_dir")
FLAGS = flags.FLAGS


class SweepError(Exception):
    """A one-line reason the sweep cannot run."""


@dataclasses.dataclass(frozen=True)
class Point:
    """One grid point: its folder name and the overrides that make it."""

    name: str
    overrides: dict[str, str]


def parse_grid(entries: list[str]) -> list[tuple[str, list[str]]]:
    """``KEY=V1,V2`` entries as ``(key, values)``.

    Raises:
        SweepError: for an entry without ``=`` or values, or a key given twice.
    """
    grid = []
    for entry in entries:
        key, _, values = entry.partition("=")
        items = [value.strip() for value in values.split(",") if value.strip()]
        if not key.strip() or not items:
            raise SweepError(f"--grid '{entry}' is not KEY=V1,V2,...; "
                             "e.g. --grid=trainer.learning_rate=2e-5,5e-5")
        if key.strip() in [known for known, _ in grid]:
            raise SweepError(f"--grid names '{key.strip()}' twice; give its values in one --grid")
        grid.append((key.strip(), items))
    return grid


def grid_points(grid: list[tuple[str, list[str]]]) -> list[Point]:
    """The cross product of the grid's values (``base``, no overrides, without a grid)."""
    if not grid:
        return [Point("base", {})]
    points = []
    for values in itertools.product(*(items for _, items in grid)):
        overrides = dict(zip((key for key, _ in grid), values, strict=True))
        name = "__".join(f"{key.rpartition('.')[2]}={value}" for key, value in overrides.items())
        points.append(Point(re.sub(r"[^\w.=+-]", "_", name), overrides))
    return points


def summary_stats(values: list[float]) -> dict[str, float]:
    """n, mean, sd (sample; 0 for one value), median, min and max of ``values``."""
    return {"n": len(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "median": statistics.median(values), "min": min(values), "max": max(values)}


def metric_values(results: dict) -> dict[str, float]:
    """The finite numeric metrics of one ``eval_results.json`` (not counts, timings or paths)."""
    return {name: float(value) for name, value in results.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and not BOOKKEEPING.search(name)}


def failed_to_learn(results: dict, main_metric: str, mode: str) -> bool:
    """Whether the main metric is no better than (within the margin of) the run's baseline."""
    baseline = results.get("baseline", {}).get(main_metric)
    value = results.get(main_metric)
    if baseline is None or not isinstance(value, (int, float)):
        return False
    if not math.isfinite(value):
        return True
    gain = value - baseline if mode == "max" else baseline - value
    return gain <= FAILED_TO_LEARN_MARGIN


def summarize_point(point: Point, runs: list[dict], main_metric: str, mode: str) -> dict:
    """A point's runs, each metric's statistics over the finished ones, failures counted."""
    finished = [run for run in runs if run["status"] == "finished"]
    names = dict.fromkeys(name for run in finished for name in metric_values(run["results"]))
    stats = {}
    for name in names:
        values = [metric_values(run["results"]).get(name) for run in finished]
        values = [value for value in values if value is not None]
        if values:
            stats[name] = summary_stats(values)
    return {"name": point.name, "overrides": point.overrides, "runs": runs, "metrics": stats,
            "finished": len(finished), "failed": sum(run["status"] == "failed" for run in runs),
            "failed_to_learn": sum(failed_to_learn(run["results"], main_metric, mode) for run in finished)}


def best_point(points: list[dict], main_metric: str, mode: str) -> str:
    """The name of the point with the best mean main metric ("" when none finished)."""
    scored = [(point["metrics"][main_metric]["mean"], point["name"]) for point in points
              if main_metric in point["metrics"]]
    if not scored:
        return ""
    return (max(scored) if mode == "max" else min(scored))[1]


def summary_markdown(summary: dict) -> str:
    """``summary.md``: the main metric per point, then every metric's mean ± sd."""
    main = summary["main_metric"]
    lines = [f"# Sweep: {main} over seeds {', '.join(map(str, summary['seeds']))}", "",
             f"Best point by mean {main}: **{summary['best'] or 'none finished'}**", "",
             f"| point | runs | {main} mean ± sd | median | min | max | failed | failed to learn |",
             "|---|---|---|---|---|---|---|---|"]
    for point in summary["points"]:
        stats = point["metrics"].get(main)
        cells = ["–"] * 4
        if stats:
            cells = [f"{stats['mean']:.4f} ± {stats['sd']:.4f}",
                     *(f"{stats[key]:.4f}" for key in ("median", "min", "max"))]
        lines.append(f"| {point['name']} | {point['finished']} | " + " | ".join(cells)
                     + f" | {point['failed']} | {point['failed_to_learn']} |")
    names = list(dict.fromkeys(name for point in summary["points"] for name in point["metrics"]))
    lines += ["", "Every metric, mean ± sd:", "", "| point | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for point in summary["points"]:
        cells = [f"{point['metrics'][name]['mean']:.4f} ± {point['metrics'][name]['sd']:.4f}"
                 if name in point["metrics"] else "–" for name in names]
        lines.append(f"| {point['name']} | " + " | ".join(cells) + " |")
    failures = [(point["name"], run) for point in summary["points"] for run in point["runs"]
                if run["status"] == "failed"]
    if failures:
        lines += ["", "Failed runs:", ""]
        lines += [f"- {name} seed {run['seed']}: {run['error']}" for name, run in failures]
    return "\n".join(lines) + "\n"


class Sweep:
    """The runs of one sweep in ``output_dir``, started as subprocesses and stopped together."""

    def __init__(self, output_dir: Path, config_files: list[str], overrides: list[str]):
        self.output_dir = output_dir
        self.config_files = config_files
        self.overrides = overrides
        self._processes: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def run_dir(self, point: Point, seed: str) -> Path:
        """Where the run of ``point`` with ``seed`` writes (its log: the same path + ``.log``)."""
        return self.output_dir / point.name / f"seed_{seed}"

    def command(self, point: Point, seed: str) -> list[str]:
        """The ``tfft-train`` command of one run."""
        settings = ",".join([*(f"{key}={value}" for key, value in point.overrides.items()),
                             f"runtime.seed={seed}"])
        return [sys.executable, "-m", "tfft.cli.train",
                *(f"--config_file={path}" for path in self.config_files),
                f"--model_dir={self.run_dir(point, seed)}", "--mode=train_and_eval",
                *(f"--params_override={override}" for override in self.overrides),
                f"--params_override={settings}"]

    def result(self, point: Point, seed: str) -> dict | None:
        """The finished run's ``eval_results.json`` (None if it has not finished)."""
        path = self.run_dir(point, seed) / "eval_results.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def run(self, point: Point, seed: str) -> dict:
        """Runs one training (unless it finished before); returns its status and results."""
        results = self.result(point, seed)
        if results is not None:
            return {"seed": int(seed), "status": "finished", "results": results, "resumed": "kept"}
        folder = self.run_dir(point, seed)
        folder.parent.mkdir(parents=True, exist_ok=True)
        log = folder.with_name(folder.name + ".log")
        start = time.perf_counter()
        with log.open("a") as out:
            process = subprocess.Popen(self.command(point, seed), stdout=out, stderr=subprocess.STDOUT)
            with self._lock:
                self._processes.add(process)
            try:
                status = process.wait()
            finally:
                with self._lock:
                    self._processes.discard(process)
        seconds = time.perf_counter() - start
        results = self.result(point, seed)
        if status or results is None:
            return {"seed": int(seed), "status": "failed", "results": {}, "seconds": seconds,
                    "error": last_error_line(log) or f"exit status {status}", "log": str(log)}
        return {"seed": int(seed), "status": "finished", "results": results, "seconds": seconds}

    def stop(self) -> None:
        """Ends every run still going and waits for it (their backups let the next sweep resume them)."""
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def last_error_line(log: Path) -> str:
    """The run's one-line failure reason: its ``error:`` line, else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"([\w-]+: )?error: ", line)]
    return (errors or lines or [""])[-1]


def main_metric_of(config_files: list[str], overrides: list[str]) -> tuple[str, str]:
    """The runs' main metric and whether higher (``max``) or lower (``min``) is better."""
    import tfft.cli  # noqa: F401 - imports TensorFlow as the commands do, without its start-up notices.
    from tfft.config import build_config
    from tfft.errors import TfftError
    from tfft.tasks import get_task

    try:
        task = get_task(build_config(config_files, overrides).task)
    except TfftError as error:
        raise SweepError(str(error)) from None
    return task.main_metric, task.main_metric_mode


def run_sweep(output_dir: Path, config_files: list[str], overrides: list[str], seeds: list[str],
              grid: list[tuple[str, list[str]]], parallel: int = 1, report=print) -> dict:
    """Runs (or resumes) the sweep and writes ``summary.json`` and ``summary.md``; returns the summary."""
    if parallel < 1:
        raise SweepError(f"--parallel must be at least 1, got {parallel}")
    if not seeds:
        raise SweepError("--seeds is empty; give one or more, e.g. --seeds=1,2,3")
    points = grid_points(grid)
    output_dir = output_dir.resolve()
    main_metric, mode = main_metric_of(config_files, [*overrides, *(
        ",".join(f"{key}={value}" for key, value in point.overrides.items()) for point in points[:1])])
    output_dir.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(output_dir, config_files, overrides)
    jobs = [(point, seed) for point in points for seed in seeds]
    runs: dict[tuple[str, str], dict] = {}
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = {pool.submit(sweep.run, point, seed): (point, seed) for point, seed in jobs}
            try:
                for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                    point, seed = futures[future]
                    run = runs[point.name, seed] = future.result()
                    value = run["results"].get(main_metric)
                    shown = (f"{main_metric} {value:.4f}" if isinstance(value, (int, float))
                             else run.get("error", ""))
                    report(f"[{done}/{len(jobs)}] {point.name} seed {seed}: {run['status']}"
                           f"{' (kept)' if run.get('resumed') else ''}: {shown}")
            except BaseException:  # Interrupted: start no more runs, end those going.
                pool.shutdown(wait=False, cancel_futures=True)
                sweep.stop()
                raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    summaries = [summarize_point(point, [runs[point.name, seed] for seed in seeds], main_metric, mode)
                 for point in points]
    summary = {"main_metric": main_metric, "mode": mode, "seeds": [int(seed) for seed in seeds],
               "config_files": config_files, "params_override": overrides,
               "grid": {key: values for key, values in grid}, "points": summaries,
               "best": best_point(summaries, main_metric, mode)}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (output_dir / "summary.md").write_text(summary_markdown(summary))
    return summary


def main(argv):
    """Runs the sweep the flags describe and prints ``summary.md``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    output_dir = Path(FLAGS.output_dir)
    try:
        run_sweep(output_dir, FLAGS.config_file, FLAGS.params_override, FLAGS.seeds, parse_grid(FLAGS.grid),
                  FLAGS.parallel, report=lambda line: print(line, flush=True))
    except SweepError as error:
        sys.exit(f"error: {error}")
    print((output_dir / "summary.md").read_text())


if __name__ == "__main__":
    app.run(main)
