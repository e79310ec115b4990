"""absl entry points (``tfft-train``, ``tfft-export``, ``tfft-predict``).

Importing this package starts quietly (see :mod:`tfft.cli.quiet`): TensorFlow is imported
with its start-up notices filtered. Without TensorFlow installed, the entry points stop
with one line saying how to install it.
"""

import importlib.util
import sys

from tfft.cli.quiet import quiet_start

if importlib.util.find_spec("tensorflow") is None:
    from tfft import _INSTALL_TENSORFLOW

    sys.exit(f"error: {_INSTALL_TENSORFLOW}")
quiet_start()
