"""absl entry points (``tfft-train``, ``tfft-export``)."""

import os

# Keep TensorFlow's C++ start-up chatter out of the console unless asked for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
