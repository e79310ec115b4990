"""Differences between the TensorFlow and Keras releases tfft supports, in one place.

tfft is tested on TensorFlow 2.21 with the newest Keras (``tools/test.sh``) and on TensorFlow
2.20 with Keras 3.10, the oldest Keras it claims (``tools/test.sh --tf=2.20``; TensorFlow 2.20
is the newest ``tensorflow-tpu``). Each shim below names the release that needs it; drop it
with that release's support.

* :func:`epoch_iterator_batches` (Keras 3.10): Keras' ``EpochIterator`` yields
  ``(step, iterator)`` in Keras 3.10 and ``(begin_step, end_step, iterator)`` from Keras 3.11
  on (``steps_per_execution`` steps per item). ``tfft.training.distributed_fit_shim`` reads
  the first batch through it.
* :func:`progbar_shows_values_as_given` (Keras 3.10 to 3.14): ``keras.utils.Progbar`` takes
  ``stateless_metrics`` (names whose values are averaged over the epoch's steps, all others
  shown as given) only from Keras 3.15; before, it averages every value whose name is not in
  ``stateful_metrics``. ``tfft.training.callbacks``' epoch bar shows Keras' batch logs, which
  are running means already, as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def epoch_iterator_batches(epoch_iterator: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
    """Yields the batch iterator of each item of a Keras ``EpochIterator``, whatever its step fields."""
    for item in epoch_iterator:
        yield item[-1]


class _EveryName:
    """The ``stateful_metrics`` of a Keras 3.10-3.14 ``Progbar`` that holds every metric's name."""

    def __contains__(self, name: object) -> bool:
        return True


def progbar_shows_values_as_given(progbar: Any) -> None:
    """Makes a ``keras.utils.Progbar`` show every value as given (``stateless_metrics=()``)."""
    if hasattr(progbar, "stateless_metrics"):  # Keras 3.15 on
        progbar.stateful_metrics, progbar.stateless_metrics = None, set()
    else:  # Keras 3.10 to 3.14: values whose names are in stateful_metrics are shown as given
        progbar.stateful_metrics = _EveryName()
