"""Devices and the ``tf.distribute`` strategy from the runtime config.

Call :func:`configure_runtime` before anything else touches TensorFlow's devices:
logical CPU devices and op determinism can only be set before the runtime starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import tensorflow as tf

from tfft.config import RuntimeConfig
from tfft.errors import TfftError, reason
from tfft.training import distributed_fit_shim

#: How long a grpc:// TPU address may take to accept a connection.
TPU_CONNECT_SECONDS = 20


def configure_runtime(runtime: RuntimeConfig) -> None:
    """Splits the CPU into ``runtime.num_cpu_devices`` logical devices; sets op determinism.

    Raises:
        TfftError: when TensorFlow already started with another number of CPU devices.
    """
    count = runtime.num_cpu_devices
    if count < 0:
        raise TfftError(f"runtime.num_cpu_devices must be 0 (off) or more, got {count}")
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
        except RuntimeError:  # The runtime already started: fine if it has these devices.
            if len(tf.config.list_logical_devices("CPU")) != count:
                raise TfftError(
                    f"runtime.num_cpu_devices={count} must be set before TensorFlow starts; "
                    "start a new process (e.g. tfft-train) with it"
                ) from None
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()


def create_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """Builds the strategy named by ``runtime.strategy``.

    ``default`` is TensorFlow's default (no-op) strategy, ``one_device`` the first GPU
    (or the CPU), ``mirrored`` ``runtime.devices`` (default: all local GPUs, else the
    logical CPUs), ``multi_worker`` the cluster in ``TF_CONFIG`` and ``tpu`` the TPU at
    ``runtime.tpu``.

    Raises:
        TfftError: when the strategy's requirements (devices, TF_CONFIG, a TPU) are missing.
    """
    name = runtime.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    distributed_fit_shim.install()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(_mirrored_devices(runtime.devices))
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu":
        return _tpu_strategy(runtime.tpu)
    raise TfftError(f"config key 'runtime.strategy' has unknown value '{name}'")


def _mirrored_devices(requested: list) -> list[str] | None:
    """``runtime.devices`` checked against this machine, else the GPUs or the logical CPUs."""
    def short(name: str) -> str:  # "/job:localhost/.../device:GPU:1" or "/gpu:1" -> "/gpu:1"
        return "/" + str(name).lower().rsplit("/", 1)[-1].replace("device:", "")

    available = {short(device.name) for device in tf.config.list_logical_devices()}
    if requested:
        missing = [device for device in requested if short(device) not in available]
        if missing:
            raise TfftError(
                f"runtime.devices names {missing}, which this machine does not have; it has "
                f"{', '.join(sorted(available))}"
            )
        return [str(device) for device in requested]
    if tf.config.list_logical_devices("GPU"):
        return None  # MirroredStrategy's default: every local GPU.
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def _multi_worker_strategy() -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG", "")
    try:
        config = json.loads(raw) if raw else {}
        valid = bool(config["cluster"]) and isinstance(config["task"]["type"], str)
        int(config["task"]["index"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        valid = False
    if not valid:
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

    def unreachable(why: str) -> TfftError:
        return TfftError(
            f"cannot reach the TPU runtime.tpu='{address}' ({why}); check the name "
            "or address and that this host can reach it"
        )

    if address.startswith("grpc://"):  # TensorFlow would wait forever for a silent address.
        host, _, port = address[len("grpc://"):].rpartition(":")
        if not host or not port.isdigit():
            raise unreachable("a grpc:// address needs host:port, e.g. grpc://10.0.0.2:8470")
        try:
            socket.create_connection((host, int(port)), timeout=TPU_CONNECT_SECONDS).close()
        except OSError as error:
            raise unreachable(reason(error)) from None
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # noqa: BLE001 - resolvers raise many types for one cause.
        raise unreachable(reason(error)) from None
    return tf.distribute.TPUStrategy(resolver)


@dataclasses.dataclass(frozen=True)
class Worker:
    """This process's place in the cluster.

    Attributes:
        is_chief: Whether this worker writes checkpoints, backups and TensorBoard logs.
        name: ``worker_1`` style name of a non-chief worker ("" for the chief).
        multi_worker: Whether the strategy spans several worker processes.
    """

    is_chief: bool = True
    name: str = ""
    multi_worker: bool = False


def worker_of(strategy: tf.distribute.Strategy) -> Worker:
    """The :class:`Worker` of this process under ``strategy``."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return Worker()
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    spec = resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in spec)
    count = sum(len(spec.get(job, [])) for job in ("chief", "worker"))
    return Worker(is_chief, "" if is_chief else f"{task_type}_{task_id}", count > 1)
