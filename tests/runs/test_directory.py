import pytest

from jhpo.runs.directory import RunDirectory, load_run
from tests.runs.test_records import make_trial


def test_records_round_trip_through_the_run_directory(tmp_path):
    directory = RunDirectory(tmp_path)
    meta = directory.start({"metric": "loss", "mode": "min", "seed": 1}, identity_keys=("seed",))
    trial = make_trial(0, 0.25)
    trial.row = [0.125, 0.5]
    directory.append(trial)
    loaded = load_run(tmp_path)
    assert loaded.trials == [trial]
    assert loaded.meta["created"] == meta["created"]


def test_a_corrupt_record_in_the_middle_is_an_error(tmp_path):
    directory = RunDirectory(tmp_path)
    directory.start({"seed": 0}, identity_keys=())
    directory.append(make_trial(0, 1.0))
    with open(directory.trials_path, "a") as f:
        f.write("not json\n")
    directory.append(make_trial(1, 1.0))
    with pytest.raises(ValueError, match="corrupt record"):
        directory.read_trials()


def test_load_run_on_a_plain_directory_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        load_run(tmp_path)
