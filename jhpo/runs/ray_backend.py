"""``backend="ray"``: each trial a Ray task on the cluster this process is connected to.

Ray is optional (``pip install 'jhpo[ray]'``); this module is imported only for
``tune(..., backend="ray")``. The pool connects to the cluster ``ray.init`` was called for;
when Ray is not initialised it calls ``ray.init()`` itself (which joins the cluster named
by ``RAY_ADDRESS``, else starts a local instance) and shuts Ray down when the run ends.

A trial is one task, with ``max_retries=0`` (a trial whose worker or node died is recorded
as failed, as with local workers, rather than run again behind the driver's back) and the
options ``resources_per_trial`` gives (``{"num_gpus": 1}``: Ray then sets the task's
``CUDA_VISIBLE_DEVICES``). Reports reach the driver through a small asynchronous actor,
the :class:`ReportBox`: the task's ``report`` waits there for the driver's answer; the
driver collects the reports waiting, judges them and posts the answers.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Mapping
from typing import Any

try:
    import ray
except ImportError as error:  # Ray is an optional dependency
    raise ImportError("backend='ray' needs Ray: pip install 'jhpo[ray]' (or pip install ray)") \
        from error

from jhpo.runs.pools import Event, Finished, Judge, Lost, Started, objective_name, pickled_objective
from jhpo.runs.worker import Called, RemoteReport, call_objective, encode_decision


@ray.remote(num_cpus=0)
class ReportBox:
    """Where running tasks' reports wait for the driver's answers."""

    def __init__(self):
        self.waiting: list[tuple] = []  # ("started", trial_id), ("report", trial_id, ...)
        self.answers: dict[int, asyncio.Future] = {}
        self.arrived = asyncio.Event()

    async def started(self, trial_id: int) -> None:
        """Called by a task as it begins (``trial_timeout_s`` counts from here)."""
        self.waiting.append(("started", trial_id))
        self.arrived.set()

    async def report(self, trial_id: int, resource, metrics):
        """Called by a task: wait for the driver's answer to this report."""
        answer = asyncio.get_running_loop().create_future()
        self.answers[trial_id] = answer
        self.waiting.append(("report", trial_id, resource, metrics))
        self.arrived.set()
        return await answer

    async def collect(self) -> list[tuple]:
        """Called by the driver: the news waiting, once there is some."""
        await self.arrived.wait()
        self.arrived.clear()
        news, self.waiting = self.waiting, []
        return news

    async def answer(self, trial_id: int, decision) -> None:
        self.answers.pop(trial_id).set_result(decision)


def run_trial_task(objective_bytes: bytes, trial_id: int, config: dict, box,
                   takes_report: bool) -> tuple:
    """One trial inside a Ray task: the fields of its :class:`Called`."""
    box.started.remote(trial_id)
    objective = pickle.loads(objective_bytes)
    report = None
    if takes_report:
        report = RemoteReport(trial_id, lambda message: ray.get(box.report.remote(*message[1:])))
    return tuple(call_objective(objective, config, report))


def describe_task_failure(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"its Ray task failed: {type(error).__name__}" + (f": {lines[0]}" if lines else "")


class RayPool:
    """``slots`` trials at once, each a Ray task (see the module's notes)."""

    def __init__(self, objective: Callable, slots: int, judge: Judge, takes_report: bool,
                 resources_per_trial: Mapping[str, Any] | None = None):
        self.name = objective_name(objective)
        self.slots, self.judge, self.takes_report = slots, judge, takes_report
        objective_bytes = pickled_objective(objective)
        options = {"num_cpus": 1, **(resources_per_trial or {}), "max_retries": 0}
        try:
            self.task = ray.remote(run_trial_task).options(**options)
        except (TypeError, ValueError) as error:
            raise ValueError(f"resources_per_trial={dict(resources_per_trial or {})!r} are not "
                             f"options of a Ray task: {error}") from None
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init()
        self.objective_ref = ray.put(objective_bytes)
        self.box = ReportBox.remote()
        self.collecting = self.box.collect.remote()
        self.tasks: dict[ray.ObjectRef, int] = {}

    def start(self, trial_id: int, config: dict) -> None:
        ref = self.task.remote(self.objective_ref, trial_id, config, self.box, self.takes_report)
        self.tasks[ref] = trial_id

    def wait(self, timeout: float | None) -> list[Event]:
        watched = [*self.tasks, self.collecting]
        ready, _ = ray.wait(watched, num_returns=1, timeout=timeout)
        if ready:  # take everything else that is ready too
            ready, _ = ray.wait(watched, num_returns=len(watched), timeout=0)
        events: list[Event] = []
        for ref in ready:
            if ref == self.collecting:
                events.extend(self.read(ray.get(ref)))
                self.collecting = self.box.collect.remote()
            else:
                events.append(self.ended(ref))
        return events

    def read(self, news: list[tuple]) -> list[Started]:
        """Answer the reports among ``news``; the trials that started."""
        started = []
        for kind, trial_id, *fields in news:
            if kind == "started":
                started.append(Started(trial_id))
            else:
                decision = encode_decision(self.judge(trial_id, *fields))
                self.box.answer.remote(trial_id, decision)
        return started

    def ended(self, ref) -> Finished | Lost:
        trial_id = self.tasks.pop(ref)
        try:
            return Finished(trial_id, Called(*ray.get(ref)))
        except ray.exceptions.RayError as error:
            return Lost(trial_id, describe_task_failure(error))

    def end(self, trial_id: int, reason: str) -> Lost:
        ref = next(r for r, i in self.tasks.items() if i == trial_id)
        ray.cancel(ref, force=True)
        del self.tasks[ref]
        return Lost(trial_id, reason)

    def close(self) -> None:
        for ref in self.tasks:
            ray.cancel(ref, force=True)
        self.tasks = {}
        ray.kill(self.box)
        if self.started_ray:
            ray.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
