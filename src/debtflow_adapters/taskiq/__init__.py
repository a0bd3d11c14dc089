"""Taskiq: the broker between the API and the workers, the scheduler, and the JobQueue port."""

from debtflow_adapters.taskiq.broker import make_broker, make_scheduler
from debtflow_adapters.taskiq.job_queue import TaskiqJobQueue

__all__ = ["TaskiqJobQueue", "make_broker", "make_scheduler"]
