"""A background task's log lines name the task and the HTTP request that queued it.

A job sent while a request is answered carries that request's id in its ``request_id``
label (:func:`request_labels`, which :class:`~debtflow_adapters.taskiq.job_queue.TaskiqJobQueue`
and the retry policy's give-up job use), so a job that a task sends carries it on too.
:class:`LogContextMiddleware` puts the label and the message's task id where the JSON
lines read them (:mod:`debtflow_adapters.logs`) before the task runs.
"""

from __future__ import annotations

from taskiq import TaskiqMessage, TaskiqMiddleware

from debtflow_adapters.logs import request_id_var, task_id_var

REQUEST_ID_LABEL = "request_id"


def request_labels() -> dict[str, str]:
    """The labels of a job sent now: the id of the request being answered, or of the one
    that queued the running task, if there is one."""
    request_id = request_id_var.get()
    return {} if request_id is None else {REQUEST_ID_LABEL: request_id}


class LogContextMiddleware(TaskiqMiddleware):
    """Sets the task's id and its request's id (none for a job no request queued, a
    scheduled one) for the lines logged while the task runs, its middlewares' included.
    Both are set, never inherited: the in-process broker runs a task in a copy of its
    sender's context, which may hold the id of a request the job does not belong to.
    Each message is run in an asyncio task of its own, whose context ends with it."""

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        task_id_var.set(message.task_id)
        request_id = message.labels.get(REQUEST_ID_LABEL)
        request_id_var.set(None if request_id is None else str(request_id))
        return message
