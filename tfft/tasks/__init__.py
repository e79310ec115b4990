"""Tasks: one module per task, each registering itself with :func:`register_task`.

Every module of this package is imported here, so a new task is one new file; tasks
from other packages register through the ``tfft.tasks`` entry-point group (see
:data:`tfft.config.TASK_PLUGIN_GROUP`).
"""

from __future__ import annotations

import importlib
import pkgutil

from tfft.config import TaskConfig, task_config
from tfft.errors import TfftError
from tfft.tasks.base import TASKS, Task, register_task

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def get_task(config: TaskConfig) -> Task:
    """Instantiates the task named by ``config.type``."""
    if config.type not in TASKS:
        raise TfftError(
            f"config key 'task.type' has unknown value '{config.type}'; "
            f"choose one of {', '.join(sorted(TASKS))}"
        )
    task_class = TASKS[config.type]
    if not isinstance(config, task_class.config_class):
        raise TypeError(f"task '{config.type}' needs a {task_class.config_class.__name__}; "
                        "build it with tfft.config.task_config or build_config")
    task = task_class(config)
    if task.main_metric not in task.metric_names:
        raise TfftError(
            f"config key 'task.main_metric' has unknown value '{task.main_metric}' for "
            f"{config.type}; choose one of {', '.join(task.metric_names)}"
        )
    return task


def build_task(task_type: str, **settings) -> Task:
    """The task ``task_type`` with ``settings`` for its config section (see :func:`task_config`)."""
    return get_task(task_config(task_type, **settings))


__all__ = ["TASKS", "Task", "build_task", "get_task", "register_task"]
