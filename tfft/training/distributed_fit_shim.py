"""Makes Keras 3 ``fit`` run under multi-replica strategies with per-replica batches.

Keras 3.15's TensorFlow trainer has two faults (keras-team/keras#20585):

1. ``_maybe_symbolic_build`` turns the first distributed input batch into one batch
   with ``strategy.reduce("MEAN", batch, axis=None)``: it averages the *inputs* of the
   replicas. A multi-worker strategy cannot do that for ``PerReplica`` inputs
   ("Attempt to convert a value (PerReplica...)"), and under ``MirroredStrategy`` it
   fails as soon as the replicas' batches are padded to different lengths
   ("Inputs to operation AddN ... must have the same size and shape"). The build only
   needs shapes and dtypes, so one local replica's batch serves, for every strategy.
2. Under a multi-worker strategy, ``reduce_per_replica`` reduces the step's logs with
   ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars ("Invalid reduction
   dimension 0"). The logs are metric results, already synchronised across workers by
   the metrics' own all-reduce, so the first local value is the value of every replica.

:func:`install` patches exactly these two functions; everything else keeps Keras' own
code. Drop this module when https://github.com/keras-team/keras/issues/20585 is fixed.
"""

from __future__ import annotations

import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as keras_tf_trainer

from tfft import compat

_ORIGINAL_BUILD = keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build
_ORIGINAL_REDUCE = keras_tf_trainer.reduce_per_replica


def _is_multi_worker(strategy) -> bool:
    return strategy is not None and keras_tf_trainer._collective_all_reduce_multi_worker(strategy)


def _first_local(value, strategy):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Builds from one local replica's batch instead of the replicas' mean batch."""
    strategy = self._distribute_strategy
    if iterator is None or strategy is None:
        return _ORIGINAL_BUILD(self, iterator=iterator, data_batch=data_batch)
    for batches in compat.epoch_iterator_batches(iterator):
        data_batch = tree.map_structure(lambda value: _first_local(value, strategy), next(batches))
        break
    return _ORIGINAL_BUILD(self, data_batch=data_batch)


def reduce_per_replica(values, strategy, reduction):
    """Takes the first local value of (synchronised) logs under a multi-worker strategy."""
    if _is_multi_worker(strategy) and reduction in ("auto", "mean"):
        return tree.map_structure(lambda value: _first_local(value, strategy), values)
    return _ORIGINAL_REDUCE(values, strategy, reduction)


def install() -> None:
    """Patches Keras' TensorFlow trainer (idempotent)."""
    keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    keras_tf_trainer.reduce_per_replica = reduce_per_replica
