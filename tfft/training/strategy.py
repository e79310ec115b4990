"""Choosing a ``tf.distribute`` strategy and a Keras dtype policy from the runtime config."""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf

from tfft.config import RuntimeConfig
from tfft.errors import TfftError, reason


def create_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """Builds the strategy named by ``runtime.strategy``.

    ``default`` is TensorFlow's default (no-op) strategy, ``one_device`` the first GPU
    (or the CPU), ``mirrored`` all local GPUs, ``multi_worker`` the cluster in
    ``TF_CONFIG`` and ``tpu`` the TPU at ``runtime.tpu``.

    Raises:
        TfftError: when the strategy's requirements (TF_CONFIG, a TPU) are missing.
    """
    name = runtime.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu":
        return _tpu_strategy(runtime.tpu)
    raise TfftError(f"config key 'runtime.strategy' has unknown value '{name}'")


def _multi_worker_strategy() -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG", "")
    try:
        cluster = json.loads(raw)["cluster"] if raw else None
    except (json.JSONDecodeError, KeyError, TypeError):
        cluster = None
    if not cluster:
        raise TfftError(
            "runtime.strategy=multi_worker needs a TF_CONFIG environment variable with "
            "'cluster' and 'task' entries; set it on every worker"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def _tpu_strategy(address: str) -> tf.distribute.Strategy:
    if not address:
        raise TfftError(
            "runtime.strategy=tpu needs runtime.tpu: a TPU name, a grpc:// address, "
            "or 'local' on a TPU VM"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # noqa: BLE001 - resolvers raise many types for one cause.
        raise TfftError(
            f"cannot reach the TPU runtime.tpu='{address}' ({reason(error)}); check the name "
            "or address and that this host can reach it"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def set_precision(policy: str) -> None:
    """Sets the global Keras dtype policy (``float32``, ``mixed_float16``, ``mixed_bfloat16``).

    Under ``mixed_float16`` Keras wraps the optimizer in dynamic loss scaling.
    """
    if policy == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
        logging.warning("mixed_float16 without a GPU is slow; mixed_bfloat16 suits CPUs and TPUs")
    keras.mixed_precision.set_global_policy(policy)
