r"""Tokenizes a task's training and validation data into sharded TFRecord files.

The output folder (local or ``gs://``) gets ``train-*.tfrecord``,
``validation-*.tfrecord`` and ``metadata.json`` (see :mod:`tfft.data.tfrecords`).
Training reads them when the config points at them, with fixed-length batches as
TPUs need:

    python tools/create_tfrecords.py --config_file=configs/glue/sst2.yaml \
        --params_override=task.init_checkpoint=/models/bert,task.train_data.input_path=train.tsv,\
task.validation_data.input_path=dev.tsv --output_dir=gs://bucket/sst2_tfrecords
    tfft-train --config_file=configs/glue/sst2.yaml --model_dir=gs://bucket/run \
        --params_override=task.train_data.input_path=gs://bucket/sst2_tfrecords/train-*.tfrecord,\
task.validation_data.input_path=gs://bucket/sst2_tfrecords/validation-*.tfrecord

The tokenizer is ``task.tokenizer`` (default: ``task.init_checkpoint``'s), and
``task.max_seq_length`` is the records' fixed length; train with the same values.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tfft.cli.common import define_config_flags, user_errors  # noqa: E402
from tfft.config import build_config, to_dict  # noqa: E402
from tfft.data import tfrecords  # noqa: E402
from tfft.errors import TfftError  # noqa: E402
from tfft.modeling import load_pretrained  # noqa: E402
from tfft.tasks import get_task  # noqa: E402

define_config_flags()
flags.DEFINE_string("output_dir", None, "Folder for the TFRecord files and metadata.json (local or gs://).")
flags.DEFINE_integer("num_shards", 8, "Files per split (more files read in parallel on larger hosts).")
flags.DEFINE_list("splits", list(tfrecords.SPLITS), "Which of train, validation to write.")
flags.mark_flag_as_required("output_dir")
FLAGS = flags.FLAGS


def create(config, output_dir: str, num_shards: int, splits) -> dict:
    """Reads, checks and tokenizes each split as training would; writes files and metadata."""
    unknown = sorted(set(splits) - set(tfrecords.SPLITS))
    if unknown or not splits:
        raise TfftError(f"--splits has {unknown or 'nothing'}; choose from {', '.join(tfrecords.SPLITS)}")
    if num_shards < 1:
        raise TfftError(f"--num_shards must be at least 1, got {num_shards}")
    task = get_task(config.task)
    examples = {}
    for split in splits:
        data = getattr(config.task, f"{split}_data")
        if not data.input_path:
            raise TfftError(f"task.{split}_data.input_path is empty; set it or leave {split} out of --splits")
        if tfrecords.is_tfrecord_path(data.input_path, data.format):
            raise TfftError(f"task.{split}_data.input_path '{data.input_path}' is TFRecord already")
        examples[split] = task.read_examples(data)
        logging.info("read %d %s examples from %s", len(examples[split]), split, data.input_path)
    if "train" in examples:
        task.prepare(examples["train"])
    _, tokenizer = load_pretrained(task)
    written = {}
    try:
        tf.io.gfile.makedirs(output_dir)
        for split, split_examples in examples.items():
            features = task.encode(split_examples, tokenizer)
            written[split] = tfrecords.write_split(
                output_dir, split, features, task.feature_specs, config.task.max_seq_length, num_shards,
                with_examples=split == "validation",
            )
            logging.info("wrote %d %s rows (%d examples) to %d files", written[split]["rows"], split,
                         written[split]["examples"], len(written[split]["files"]))
    except tf.errors.OpError as error:
        raise TfftError(
            f"cannot write to --output_dir={output_dir} ({error.message.splitlines()[0]}); check the "
            "path, its permissions and, for gs://, your Google Cloud credentials"
        ) from None
    metadata = {
        "task": task.name, "max_seq_length": config.task.max_seq_length,
        "label_names": task.label_names,
        "tokenizer": config.task.tokenizer or config.task.init_checkpoint, "splits": written,
        "task_config": to_dict(config.task),
    }
    tfrecords.write_metadata(output_dir, metadata)
    return metadata


def main(argv):
    """Builds the config and writes the files."""
    with user_errors("create_tfrecords", argv):
        config = build_config(FLAGS.config_file, FLAGS.params_override)
        metadata = create(config, FLAGS.output_dir, FLAGS.num_shards, FLAGS.splits)
        for split, info in metadata["splits"].items():
            print(f"{split}: {info['examples']} examples, {info['rows']} rows in {len(info['files'])} "
                  f"files: {FLAGS.output_dir}/{split}-*{tfrecords.SUFFIX}")


if __name__ == "__main__":
    app.run(main)
