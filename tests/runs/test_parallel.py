"""tune's settings on parallel trials, checked before any trial runs."""

import importlib.util

import pytest

import jhpo
from tests.runs import objectives
from tests.runs.test_workers import SPACE


def test_bad_settings_are_refused_with_the_rule_they_break():
    cases = [
        (dict(workers=0), "workers=0 must be a positive integer"),
        (dict(backend="spark"), "backend='spark' must be one of"),
        (dict(resources_per_trial={"num_gpus": 1}), "needs backend='ray'"),
        (dict(worker_env={"A": "1"}), "worker_env=.* must be a function"),
        (dict(batch_size=4), "batch_size=4 sets the rounds of synchronous=True"),
        (dict(synchronous=True, batch_size=0), "batch_size=0 must be a positive integer"),
        (dict(trial_timeout_s=-1), "trial_timeout_s=-1 must be a positive number"),
        (dict(synchronous=True, scheduler="asha"), "synchronous=True cannot take scheduler='asha'"),
    ]
    for settings, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            jhpo.tune(objectives.learning_curve, SPACE, num_trials=2, progress=False, **settings)
    with pytest.raises(TypeError, match=r"worker_env\(0\) returned \{'A': 1\}"):
        jhpo.tune(objectives.bowl, SPACE, num_trials=2, workers=2, progress=False,
                  worker_env=lambda i: {"A": 1})


def test_the_ray_backend_without_ray_says_how_to_install_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "ray" else find_spec(name, *args))
    with pytest.raises(ImportError, match=r"pip install 'jhpo\[ray\]'"):
        jhpo.tune(objectives.bowl, SPACE, num_trials=2, workers=2, backend="ray", progress=False)
