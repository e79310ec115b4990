"""``tfft-export``: turn a training model_dir into a SavedModel or a Hugging Face folder.

Example:
    tfft-export --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/export/1
    tfft-export --format=hf --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/hf
    tfft-export --lora_only --model_dir=/tmp/sst2_lora --export_dir=/tmp/sst2_lora/adapter
    tfft-export --quantize=int8 --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/export_int8/1
    tfft-export --format=litert --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/litert
    tfft-export --format=litert --quantize=int8 --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/litert_int8
"""

from __future__ import annotations

from absl import flags

from tfft.cli.common import run_main, user_errors
from tfft.exporting import FORMATS, export

flags.DEFINE_string("model_dir", None, "Directory written by tfft-train.")
flags.DEFINE_string("export_dir", None, "New directory for the exported model.")
flags.DEFINE_string(
    "checkpoint", "", "final, best, latest or a .weights.h5 path (default: final, else latest)."
)
flags.DEFINE_enum(
    "format", "saved_model", list(FORMATS),
    "saved_model: TF SavedModel for TF Serving; hf: Hugging Face folder (config.json, "
    "model.safetensors, tokenizer) for PyTorch transformers; litert: model.tflite (token-id inputs) "
    "for LiteRT on phones and small CPUs, with the tokenizer files in assets/.",
)
flags.DEFINE_string(
    "quantize", "", "saved_model: none (default) or int8 (Keras int8 weights per channel, inputs of each "
    "Dense layer quantized per token at run time); litert: dynamic (default; int8 weights), int8 (int8 "
    "fully connected layers calibrated on validation examples, attention/LayerNorm/softmax/GELU float32; no "
    "attention_mask input), int8_full (every op int8 where LiteRT has the kernel) or none.",
)
flags.DEFINE_integer("calibration_examples", 100,
                     "--format=litert --quantize=int8: validation examples that calibrate the ranges.")
flags.DEFINE_boolean(
    "lora_only", False, "For a LoRA run (trainer.lora_rank > 0): write just the adapter, as a PEFT folder "
    "(adapter_model.safetensors, adapter_config.json, tokenizer), instead of a model.",
)
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    """Exports the model and prints where it went."""
    with user_errors("tfft-export", argv):
        print(export(FLAGS.model_dir, FLAGS.export_dir, FLAGS.checkpoint, FLAGS.format, FLAGS.quantize,
                     FLAGS.calibration_examples, FLAGS.lora_only))


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
