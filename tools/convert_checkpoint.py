r"""Converts a pretrained encoder between checkpoint formats.

Reads any checkpoint :func:`tfft.backbones.from_pretrained` reads: a Hugging Face
folder or Hub id (``model.safetensors``, sharded, or ``pytorch_model.bin`` with
PyTorch installed), an original TF1 BERT folder or checkpoint prefix, or a Keras
folder. Writes either

- ``--output_format=hf``: ``config.json`` + ``model.safetensors`` in the family's
  base-model layout (``transformers.AutoModel.from_pretrained`` loads it), or
- ``--output_format=keras``: ``config.json`` + ``backbone.weights.h5`` (Keras 3
  weights of the tfft backbone; ``task.init_checkpoint`` accepts the folder),

plus the tokenizer files. The output is reloaded and run against the input on a
random batch; the largest difference is printed and must be within ``--tolerance``.

Examples:
    python tools/convert_checkpoint.py --input=uncased_L-12_H-768_A-12 --output=bert_hf
    python tools/convert_checkpoint.py --input=roberta-base --output=roberta_keras \
        --output_format=keras
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import app, flags, logging

from tfft import backbones
from tfft.backbones.saving import OUTPUT_FORMATS, save_backbone
from tfft.cli.common import user_errors
from tfft.data.tokenization import load_tokenizer, save_tokenizer
from tfft.errors import TfftError

flags.DEFINE_string("input", None, "Checkpoint folder, TF1 checkpoint prefix or Hugging Face Hub id.")
flags.DEFINE_string("output", None, "New folder for the converted checkpoint.")
flags.DEFINE_enum("output_format", "hf", list(OUTPUT_FORMATS), "hf (safetensors) or keras (.weights.h5).")
flags.DEFINE_float("tolerance", 1e-5, "Largest allowed output difference between input and output.")
flags.mark_flags_as_required(["input", "output"])
FLAGS = flags.FLAGS


def random_batch(vocab_size: int, lengths=(12, 7), seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids (never padding-like id 0/1) with a padded second row."""
    rng = np.random.default_rng(seed)
    width = max(lengths)
    mask = np.array([[1] * n + [0] * (width - n) for n in lengths], np.int32)
    ids = rng.integers(5, vocab_size, size=mask.shape).astype(np.int32) * mask
    types = (np.arange(width)[None, :] >= np.array(lengths)[:, None] // 2).astype(np.int32) * mask
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def largest_difference(first, second) -> float:
    """Max |difference| of ``sequence_output`` over real tokens on a random batch."""
    batch = random_batch(first.hf_config["vocab_size"])
    a = np.asarray(first(batch, training=False)["sequence_output"])
    b = np.asarray(second(batch, training=False)["sequence_output"])
    return float(np.abs(a - b)[batch["attention_mask"].astype(bool)].max())


def convert(source: str, output: Path, output_format: str, tolerance: float) -> float:
    """Converts ``source`` into ``output``; returns the verified output difference."""
    if output.exists() and any(output.iterdir()):
        raise TfftError(f"--output '{output}' is not empty; choose a new folder")
    backbone = backbones.from_pretrained(source)
    save_backbone(backbone, output, output_format)
    folder = backbones.open_checkpoint(source).folder
    try:
        save_tokenizer(load_tokenizer(folder), output)
    except TfftError as error:
        logging.warning("no tokenizer written: %s", error)
    difference = largest_difference(backbone, backbones.from_pretrained(str(output)))
    if difference > tolerance:
        raise TfftError(
            f"converted model differs from '{source}' by {difference:.2e} (> --tolerance {tolerance}); "
            "please report this as a bug"
        )
    return difference


def main(argv):
    """Converts and prints the check."""
    with user_errors("convert_checkpoint", argv):
        output = Path(FLAGS.output)
        difference = convert(FLAGS.input, output, FLAGS.output_format, FLAGS.tolerance)
        print(f"wrote {FLAGS.output_format} checkpoint to {output} (max |difference| {difference:.2e})")


if __name__ == "__main__":
    app.run(main)
