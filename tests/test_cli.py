import errno
import json
import os

import pytest
from matplotlib.figure import Figure

import jhpo
from jhpo import analysis
from jhpo.cli import main
from jhpo.experiment import Method, run_experiment


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


@pytest.fixture(scope="module")
def experiment_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("experiment")
    space = {"x": jhpo.uniform(-1, 1), "y": jhpo.uniform(-1, 1)}
    run_experiment(lambda c: c["x"] ** 2 + c["y"] ** 2, space,
                   ["random", Method("halton", searcher="quasirandom")], 3, directory,
                   num_trials=6, optimum=0.0, progress=False)
    return directory


def test_show_prints_what_a_rerun_needs(tmp_path, capsys):
    space = {"x": jhpo.uniform(-1, 1), "units": jhpo.randint(8, 64)}
    jhpo.tune(lambda c: c["x"] ** 2, space, searcher="quasirandom", num_trials=2, seed=11,
              run_dir=tmp_path, progress=False)
    assert main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "searcher quasirandom  options {}" in out and "seed 11" in out
    for version in (f"jhpo {jhpo.__version__}", "jax ", "jaxlib ", "python ", "devices "):
        assert version in out
    assert '"units": {"type": "randint", "lo": 8, "hi": 64}' in out
    assert "created 20" in out


def test_show_on_an_experiment_lists_its_grid(experiment_dir, capsys):
    assert main(["show", str(experiment_dir)]) == 0
    out = capsys.readouterr().out
    assert "seeds [0, 1, 2]" in out and '"num_trials": 6' in out and "optimum 0.0" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith(("random ", "halton "))}
    assert rows["halton"][1] == "quasirandom" and rows["halton"][-1] == "3/3"


def test_compare_prints_the_numbers_of_the_analysis(experiment_dir, capsys):
    assert main(["compare", str(experiment_dir), "--x", "evals", "--target", "0.5",
                 "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    expected = analysis.compare(analysis.load_experiment(experiment_dir), x="evals", target=0.5,
                                num_resamples=200)
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["method", "runs", "final", "median"]
    assert "to reach 0.5 (evals)" in lines[0]
    best_first = sorted(expected, key=lambda r: r.final_rank)
    for line, row in zip(lines[1:3], best_first):
        cells = line.split()
        assert cells[0] == row.name and cells[1] == "3"
        assert float(cells[2]) == pytest.approx(row.final, rel=1e-5)
        assert float(cells[5]) == pytest.approx(row.final_rank, abs=0.005)
        assert cells[-1] == f"{row.reached}/3"
    assert "ranks averaged over seeds" in out


def test_plot_writes_every_kind_of_figure(experiment_dir, tmp_path, capsys):
    target = tmp_path / "anytime.png"
    assert main(["plot", str(experiment_dir), "-o", str(target), "--quantity", "regret",
                 "--x", "evals", "--statistic", "iqm", "--resamples", "50"]) == 0
    assert target.exists() and target.with_suffix(".pdf").exists()
    assert "wrote" in capsys.readouterr().out
    assert main(["plot", str(experiment_dir), "-o", str(tmp_path / "trials"), "--kind", "trials",
                 "--run", "halton/seed_1"]) == 0
    assert (tmp_path / "trials.png").exists()
    run = experiment_dir / "random" / "seed_0"
    assert main(["plot", str(run), "-o", str(tmp_path / "front.png"), "--kind", "pareto"]) == 2
    assert "needs --metrics A B" in capsys.readouterr().err
    assert main(["plot", str(experiment_dir), "-o", str(tmp_path / "t.png"), "--kind",
                 "trials"]) == 2
    assert "pass --run METHOD/seed_K" in capsys.readouterr().err


def test_plot_curves_of_a_run_with_reports(tmp_path, capsys):
    def objective(config, report):
        for epoch in range(1, 4):
            report(epoch, {"loss": config["x"] / epoch})
        return {"loss": config["x"] / 3}

    jhpo.tune(objective, {"x": jhpo.uniform(1, 2)}, metric="loss", num_trials=3, seed=0,
              run_dir=tmp_path, progress=False)
    lines_before = (tmp_path / "reports.jsonl").read_text()
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "curves.png"), "--kind", "curves"]) == 0
    assert (tmp_path / "curves.png").exists()
    assert (tmp_path / "reports.jsonl").read_text() == lines_before  # plotting reads only
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "c.png"), "--kind", "curves",
                 "--metrics", "loss", "x"]) == 2
    assert "draws one metric" in capsys.readouterr().err


def test_help_explains_each_option(capsys):
    for command, phrases in (("plot", ["interquartile mean", "bootstrap", "coloured by outcome",
                                       "--log-x", "Pareto front"]),
                             ("compare", ["--target", "first got", "1 = best"])):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for phrase in phrases:
            assert phrase in out, (command, phrase)


def test_show_of_a_multiobjective_run_lists_its_pareto_front(tmp_path, capsys):
    def two_costs(config):
        return {"error": (config["x"] - 1) ** 2, "size": (config["x"] + 1) ** 2, "margin": 1.0}

    result = jhpo.tune(two_costs, {"x": jhpo.uniform(-2, 2)}, metric=["error", "size"],
                       mode=["min", "min"], constraints=["margin"], num_trials=6, seed=0,
                       run_dir=tmp_path, progress=False)
    assert main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "constraints ['margin'] (each must be > 0)" in out
    front = result.pareto_front()
    assert f"Pareto front of ['error', 'size']: {len(front)} trials" in out
    for trial in front:
        assert f"  trial {trial.trial_id}: [" in out
    figure = tmp_path / "front.png"
    assert main(["plot", str(tmp_path), "-o", str(figure), "--kind", "pareto"]) == 0
    assert figure.exists()
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "bars"), "--kind", "trials"]) == 0
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "curve")]) == 2
    assert "follow one objective" in capsys.readouterr().err


def write_run(directory, outcomes):
    """A run directory holding one trial per (status, value, error) in ``outcomes``; returns
    the path of its trials.jsonl."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").write_text(json.dumps(
        {"metric": "loss", "mode": "min", "searcher": "random", "seed": 0,
         "space": {"x": {"type": "uniform", "lo": 0, "hi": 1}}}))
    trials = [jhpo.Trial(trial_id=i, config={"x": i / 10}, metrics={}, value=value,
                         status=status, error=error, start_time=100.0 + i, end_time=100.5 + i,
                         seed=0)
              for i, (status, value, error) in enumerate(outcomes)]
    trials_path = directory / "trials.jsonl"
    trials_path.write_text("".join(trial.to_json() + "\n" for trial in trials))
    return trials_path


MISSING_LOSS = "KeyError: 'loss'"
BAD_SHAPE = "ValueError: loss has shape (3,)\n  a scalar was expected\n  (the second line)"


def test_show_gives_each_failures_first_line_and_counts_failures_by_error(tmp_path, capsys):
    write_run(tmp_path, [("completed", 0.5, None), ("failed", None, BAD_SHAPE),
                         ("failed", None, MISSING_LOSS), ("stopped", 0.7, "stopped at rung 1"),
                         ("failed", None, MISSING_LOSS)])
    assert main(["show", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    status = lines.index("  5 trials: 1 completed, 1 stopped, 3 failed")
    assert lines[status + 1:status + 3] == ["    2 failed with: KeyError: 'loss'",
                                            "    1 failed with: ValueError: loss has shape (3,)"]
    rows = {line.split()[0]: line for line in lines if line[:1].isdigit()}
    assert lines[status + 4].split()[-1] == "error"  # the table's header
    assert rows["1"].endswith("ValueError: loss has shape (3,)")
    assert rows["2"].endswith("KeyError: 'loss'")
    assert rows["3"].split()[-1] == "0.3"  # a stopped trial's note is not an error
    assert rows["0"].split()[-1] == "0"
    assert not any("a scalar was expected" in line for line in lines)


def test_show_with_errors_prints_each_failures_whole_error(tmp_path, capsys):
    write_run(tmp_path, [("failed", None, BAD_SHAPE), ("completed", 0.5, None),
                         ("failed", None, MISSING_LOSS)])
    assert main(["show", str(tmp_path), "--errors"]) == 0
    out = capsys.readouterr().out
    assert ("errors:\n  trial 0:\n      ValueError: loss has shape (3,)\n        a scalar was "
            "expected\n        (the second line)\n  trial 2:\n      KeyError: 'loss'\n") in out
    assert main(["show", str(tmp_path), "--errors", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "  trial 0:" in out and "  trial 2:" not in out


def test_show_without_failures_has_no_error_column(tmp_path, capsys):
    write_run(tmp_path, [("completed", 0.5, None), ("stopped", 0.7, "stopped at rung 1")])
    assert main(["show", str(tmp_path), "--errors"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("trial "))
    assert header.split() == ["trial", "status", "value", "seconds", "x"]
    assert "failed with" not in out and "errors:" not in out


@pytest.mark.parametrize("record", ['{"loss": 0.5}', "[1, 2]", "42"])
def test_show_on_a_record_that_is_json_but_not_a_trial_says_which_line(tmp_path, capsys, record):
    trials_path = write_run(tmp_path, [("completed", 0.5, None)])
    with open(trials_path, "a") as f:
        f.write(record + "\n")
    assert main(["show", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    message = captured.err.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"jhpo: {trials_path}: line 2: not a trial record")
    assert "trial_id" in message


def test_a_negative_limit_is_refused(tmp_path, capsys):
    write_run(tmp_path, [("completed", 0.5, None)])
    assert main(["show", str(tmp_path), "--limit", "-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "jhpo: --limit -1: must be 0 or more\n"
    assert main(["show", str(tmp_path), "--limit", "0"]) == 0
    assert not any(line[:1].isdigit() for line in capsys.readouterr().out.splitlines())


def test_plot_into_a_read_only_directory_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    write_run(tmp_path / "run", [("completed", 0.5, None), ("completed", 0.25, None)])
    read_only = tmp_path / "figures"
    read_only.mkdir()
    read_only.chmod(0o555)
    target = read_only / "trials.png"
    if os.access(read_only, os.W_OK):  # root ignores the mode: refuse as the OS would
        def refuse(figure, path, **options):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr(Figure, "savefig", refuse)
    try:
        status = main(["plot", str(tmp_path / "run"), "-o", str(target), "--kind", "trials"])
    finally:
        read_only.chmod(0o755)
    assert status == 1
    captured = capsys.readouterr()
    assert captured.err == f"jhpo: {target}: {os.strerror(errno.EACCES)}\n"
    assert captured.out == "" and not target.exists()
