"""Tasks: feature encoding, head, loss, metrics and post-processing per problem type."""

from __future__ import annotations

from tfft.config import TaskConfig
from tfft.errors import TfftError
from tfft.tasks.base import Task
from tfft.tasks.question_answering import QuestionAnswering
from tfft.tasks.sentence_classification import SentenceClassification
from tfft.tasks.sentence_regression import SentenceRegression
from tfft.tasks.token_classification import TokenClassification

#: ``task.type`` -> task class.
TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (SentenceClassification, SentenceRegression, TokenClassification, QuestionAnswering)
}


def get_task(config: TaskConfig) -> Task:
    """Instantiates the task named by ``config.type``."""
    if config.type not in TASKS:
        raise TfftError(
            f"config key 'task.type' has unknown value '{config.type}'; "
            f"choose one of {', '.join(sorted(TASKS))}"
        )
    task = TASKS[config.type](config)
    if task.main_metric not in task.metric_names:
        raise TfftError(
            f"config key 'task.main_metric' has unknown value '{task.main_metric}' for "
            f"{config.type}; choose one of {', '.join(task.metric_names)}"
        )
    return task


__all__ = ["TASKS", "Task", "get_task"]
