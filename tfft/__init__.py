"""tfft: fine-tune BERT-family encoders on NLP tasks with Keras 3 and TensorFlow.

``import tfft`` is cheap: TensorFlow loads on first use of a module that needs it.

- :func:`fine_tune`, :func:`evaluate`, :func:`predict`, :class:`Predictor`, :func:`export`:
  the Python API (:mod:`tfft.api`), the engine of the command-line tools.
- :mod:`tfft.config` (``ExperimentConfig``, ``task_config``, ``build_config``),
  :mod:`tfft.backbones` (``from_pretrained``), :mod:`tfft.tasks`, :mod:`tfft.data`,
  :mod:`tfft.training`, :mod:`tfft.exporting`, :mod:`tfft.prediction`.
- :class:`TfftError`: the one exception type for problems the user can fix.
"""

import importlib
import os

__version__ = "0.1.0"

# TensorFlow's best-fit-with-coalescing allocator for host memory: it reuses freed
# buffers, where the default allocator maps fresh pages for every large tensor (the
# optimizer's and activations' temporaries), each page faulting in again. Measured on
# MiniLM SST-2 training (2 AMD EPYC cores): 349 -> 304 ms per step. It must be set
# before TensorFlow's first allocation; export TF_CPU_ALLOCATOR_USE_BFC=false to opt out.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

#: Quiet defaults, set before TensorFlow and transformers load (a variable you export wins):
#: ``TF_CPP_MIN_LOG_LEVEL=2`` keeps TensorFlow's C++ INFO and WARNING lines out (errors
#: show); ``TRANSFORMERS_NO_ADVISORY_WARNINGS=1`` drops transformers' notices such as
#: "PyTorch was not found. Models won't be available", wrong for a TensorFlow user (tfft uses
#: transformers for tokenizers and configs only); its warnings stay.
ENVIRONMENT_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
for _name, _value in ENVIRONMENT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

#: Attribute -> the module that defines it, imported on first access.
_API = {
    "fine_tune": "tfft.api", "evaluate": "tfft.api", "predict": "tfft.api", "export": "tfft.api",
    "Predictor": "tfft.api", "Run": "tfft.api", "TfftError": "tfft.errors",
}
_MODULES = (
    "api", "backbones", "cli", "config", "data", "errors", "evaluation", "exporting", "modeling",
    "prediction", "tasks", "training",
)
#: The one line a missing TensorFlow ends in (``tfft.<module>`` and the entry points).
_INSTALL_TENSORFLOW = (
    "tfft needs TensorFlow, which is not installed: pip install 'tfft[cpu]' (or tfft[gpu]; on a Cloud "
    "TPU VM, tfft[tpu])"
)


def __getattr__(name: str):
    if name not in _API and name not in _MODULES:
        raise AttributeError(f"module 'tfft' has no attribute '{name}'")
    try:
        module = importlib.import_module(_API.get(name, f"tfft.{name}"))
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(_INSTALL_TENSORFLOW, name="tensorflow") from None
        raise
    return getattr(module, name) if name in _API else module


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, *_MODULES})
