import pytest

import jhpo
from jhpo.analysis.experiments import load_experiment


def test_load_experiment_reads_a_single_run_and_rejects_other_directories(tmp_path):
    jhpo.tune(lambda c: c["x"] ** 2, {"x": jhpo.uniform(-1, 1)}, num_trials=3, seed=7,
              run_dir=tmp_path / "run", progress=False)
    record = load_experiment(tmp_path / "run")
    assert record.methods == ["random"] and list(record.runs["random"]) == [7]
    assert len(record.runs["random"][7].trials) == 3
    with pytest.raises(FileNotFoundError, match="neither a jhpo experiment"):
        load_experiment(tmp_path)
