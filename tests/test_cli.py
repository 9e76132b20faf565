import jhpo
from jhpo.cli import main


def test_show_prints_settings_trials_and_best(tmp_path, capsys):
    space = {"x": jhpo.uniform(-1, 1), "act": jhpo.choice(["relu", "tanh"])}
    result = jhpo.tune(lambda c: c["x"] ** 2, space, num_trials=6, seed=0, run_dir=tmp_path,
                       progress=False)
    assert main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "searcher random" in out and "jax" in out
    assert "6 trials: 6 completed, 0 failed" in out
    assert f"best trial {result.best.trial_id}" in out
    table = [line for line in out.splitlines() if line.startswith(("trial ", "0 ", "5 "))]
    assert table[0].split()[:5] == ["trial", "status", "value", "seconds", "x"]
    assert len(table) == 3


def test_show_on_a_missing_run_fails_with_a_message(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nope")]) == 2
    assert "not a jhpo run directory" in capsys.readouterr().err
