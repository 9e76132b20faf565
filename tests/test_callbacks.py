import math
import struct

import pytest

import jhpo
from jhpo.callbacks import Callbacks, TensorBoardLogger
from tests.population.toy_task import TASK

SPACE = {"learning_rate": jhpo.loguniform(1e-3, 1e-1), "batch_size": jhpo.randint(2, 8)}


class Recorder:
    def __init__(self):
        self.events = []

    def on_trial_start(self, trial_id, config):
        self.events.append(("start", trial_id))

    def on_report(self, trial_id, resource, metrics):
        self.events.append(("report", trial_id, resource))

    def on_trial_end(self, trial):
        self.events.append(("end", trial.trial_id, trial.status))

    def on_run_end(self, result):
        self.events.append(("run_end", len(result.trials)))


class EndsOnly:
    def __init__(self):
        self.ended = []

    def on_trial_end(self, trial):
        self.ended.append(trial.trial_id)


def test_an_object_without_any_hook_is_refused():
    with pytest.raises(TypeError, match=r"callbacks\[1\] \(int\) has none of the methods"):
        Callbacks([EndsOnly(), 3])


def test_a_scheduled_population_calls_every_hook_in_order_and_skips_missing_ones():
    recorder, ends = Recorder(), EndsOnly()
    result = jhpo.tune_population(TASK, SPACE, num_trials=6, population_size=2, steps=9, seed=2,
                                  scheduler="asha", scheduler_options={"interval": 1},
                                  progress=False, callbacks=[recorder, ends])
    events = recorder.events
    assert events[-1] == ("run_end", 6)
    for trial in result.trials:
        mine = [e for e in events if e[1:2] == (trial.trial_id,)]
        assert mine[0] == ("start", trial.trial_id)
        assert mine[-1] == ("end", trial.trial_id, trial.status)
        reports = [e[2] for e in mine if e[0] == "report"]
        assert reports == [float(r) for r in range(1, int(trial.resource) + 1)]
    assert sorted(ends.ended) == sorted(t.trial_id for t in result.trials)


def test_an_unscheduled_population_calls_start_and_end_per_member():
    recorder = Recorder()
    result = jhpo.tune_population(TASK, SPACE, num_trials=4, population_size=2, steps=3,
                                  progress=False, callbacks=[recorder])
    assert [e for e in recorder.events if e[0] == "start"] == [("start", i) for i in range(4)]
    assert [e[1] for e in recorder.events if e[0] == "end"] == [t.trial_id for t in result.trials]


def read_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per tag from the TFRecord event files in ``logdir``: each record is a
    length (8 bytes), its checksum (4), an Event protobuf, its checksum (4)."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            length = struct.unpack("<Q", data[offset:offset + 8])[0]
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 16 + length
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_the_tensorboard_logger_writes_each_trial_and_the_incumbent(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), mode="min")
    result = jhpo.tune_population(TASK, SPACE, num_trials=6, population_size=2, steps=9, seed=2,
                                  scheduler="asha", scheduler_options={"interval": 3},
                                  progress=False, callbacks=[logger])
    scalars = read_scalars(tmp_path)
    incumbent = [value for _, value in scalars["incumbent/value"]]
    assert incumbent == pytest.approx(
        [min(t.value for t in result.trials[:i + 1]) for i in range(len(result.trials))], rel=1e-6)
    first = result.trials[0]
    curve = scalars[f"trial_{first.trial_id}/val_error"]
    assert [step for step, _ in curve] == list(range(3, int(first.resource) + 1, 3))
    assert math.isclose(curve[-1][1], first.metrics["val_error"], rel_tol=1e-6)


def test_tune_calls_the_hooks_for_every_trial_and_its_reports():
    recorder = Recorder()

    def objective(config, report):
        for step in (1, 2, 3):
            report(step, {"loss": config["learning_rate"] * step})
        return {"loss": config["learning_rate"] * 3}

    result = jhpo.tune(objective, SPACE, metric="loss", num_trials=3, progress=False,
                       callbacks=[recorder])
    expected = []
    for trial in result.trials:
        expected += [("start", trial.trial_id)] + [("report", trial.trial_id, float(s))
                                                   for s in (1, 2, 3)]
        expected.append(("end", trial.trial_id, "completed"))
    assert recorder.events == expected + [("run_end", 3)]
