r"""``tfft-predict``: run an exported SavedModel on a data file, one prediction per example.

See :mod:`tfft.prediction`.

Example:
    tfft-predict --export_dir=/tmp/sst2/export/1 --input_path=reviews.tsv \\
        --output_path=/tmp/sst2/reviews.jsonl
"""

from __future__ import annotations

from absl import flags

from tfft.cli.common import run_main, user_errors
from tfft.data.sources import format_names
from tfft.prediction import predict_file, summary

flags.DEFINE_string("export_dir", None, "SavedModel directory written by tfft-export.")
flags.DEFINE_string("input_path", None, "Data file, glob or tfds:NAME/SPLIT to predict (labels are ignored).")
flags.DEFINE_string("output_path", None, "File to write the predictions to (its directory is created).")
flags.DEFINE_integer("batch_size", 64, "Examples per serving_default call.", lower_bound=1)
flags.DEFINE_enum(
    "input_format", "auto", format_names(),
    "Format of --input_path; auto: from its suffix, else the format the run's data was read in.",
)
flags.DEFINE_list(
    "input_columns", None,
    "TSV/CSV without a header row: the column names (default: the run's task.*_data.columns; "
    "pass --input_columns= for a file with a header).",
)
flags.mark_flags_as_required(["export_dir", "input_path", "output_path"])
FLAGS = flags.FLAGS


def main(argv):
    """Predicts the input file and prints where the predictions went."""
    with user_errors("tfft-predict", argv):
        count, speed = predict_file(FLAGS.export_dir, FLAGS.input_path, FLAGS.output_path, FLAGS.batch_size,
                                    FLAGS.input_format, FLAGS.input_columns)
        print(summary(count, speed, FLAGS.output_path))


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
