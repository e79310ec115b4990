r"""Splits a SQuAD JSON file by article into a training and an evaluation file.

Whole articles go to one side, so no paragraph is seen in training and evaluation.
The last ``--num_eval_articles`` articles of the file (in file order) form the
evaluation part; the rest train. Both outputs keep the input's ``version``.

Example (the split used for tfft's SQuAD figures: 40 articles train, 8 evaluate)::

    python tools/split_squad.py --input=../shared/data/squad/dev-v1.1-minus-xquad.json \
        --output_dir=/tmp/squad_split --num_eval_articles=8

writes ``/tmp/squad_split/train.json`` and ``/tmp/squad_split/eval.json`` and prints
the article titles and question counts of each part. Each part's paragraphs also go to
``train.txt`` and ``eval.txt``, one context per line: unlabeled text of the same split for
masked-LM pretraining (``configs/pretraining/mlm.yaml``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("input", None, "A SQuAD v1.1 or v2.0 JSON file.")
flags.DEFINE_string("output_dir", None, "Where train.json and eval.json go.")
flags.DEFINE_integer("num_eval_articles", 8, "Articles (from the end of the file) for evaluation.")
flags.mark_flags_as_required(["input", "output_dir"])
FLAGS = flags.FLAGS


def questions(articles: list[dict]) -> int:
    """Questions in a list of SQuAD articles."""
    return sum(len(paragraph["qas"]) for article in articles for paragraph in article["paragraphs"])


def contexts(document: dict) -> list[str]:
    """The paragraphs' contexts of a SQuAD document, in file order."""
    return [paragraph["context"] for article in document["data"] for paragraph in article["paragraphs"]]


def split(document: dict, num_eval: int) -> tuple[dict, dict]:
    """``(train, eval)`` SQuAD documents: the last ``num_eval`` articles evaluate."""
    articles = document["data"]
    if not 0 < num_eval < len(articles):
        raise ValueError(
            f"--num_eval_articles must be between 1 and {len(articles) - 1} for {len(articles)} articles"
        )
    version = document.get("version", "")
    return ({"version": version, "data": articles[:-num_eval]},
            {"version": version, "data": articles[-num_eval:]})


def main(argv):
    """Reads --input, writes train.json and eval.json, prints what went where."""
    del argv
    try:
        document = json.loads(Path(FLAGS.input).read_text(encoding="utf-8"))
        parts = split(document, FLAGS.num_eval_articles)
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.exit(f"split_squad: error: cannot split '{FLAGS.input}': {error}")
    output = Path(FLAGS.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    for name, part in zip(("train", "eval"), parts, strict=True):
        (output / f"{name}.json").write_text(json.dumps(part, ensure_ascii=False))
        (output / f"{name}.txt").write_text("".join(f"{' '.join(text.split())}\n" for text in contexts(part)),
                                            encoding="utf-8")
        titles = ", ".join(article.get("title", "?") for article in part["data"])
        print(f"{name}.json: {len(part['data'])} articles, {questions(part['data'])} questions"
              + (f" ({titles})" if name == "eval" else ""))


if __name__ == "__main__":
    app.run(main)
