import subprocess
import sys

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from jhpo import analysis, plot
from jhpo.runs.records import Result
from tests.analysis.hand_made import hand_record, trial


def test_anytime_figure_draws_the_summary_it_is_given():
    summary = analysis.summarise(hand_record(optimum=0.4), x="evals", quantity="regret",
                                 num_resamples=50)
    figure = plot.anytime_figure(summary)
    value_axes, rank_axes = figure.axes
    labels = [line.get_label() for line in value_axes.lines]
    assert labels == ["a (3 runs)", "b (3 runs)"]
    for line, method in zip(value_axes.lines, summary.methods.values()):
        np.testing.assert_array_equal(line.get_xdata(), summary.grid)
        np.testing.assert_array_equal(line.get_ydata(), method.center)
        assert line.get_drawstyle() == "steps-post"
    for line, method in zip(rank_axes.lines, summary.methods.values()):
        np.testing.assert_array_equal(line.get_ydata(), method.rank)
    # one band per method, spanning the bootstrap interval
    bands = value_axes.collections
    assert len(bands) == 2
    b_vertices = bands[1].get_paths()[0].vertices
    b = summary.methods["b"]
    assert b_vertices[:, 1].min() == pytest.approx(np.nanmin(b.lower))
    assert b_vertices[:, 1].max() == pytest.approx(np.nanmax(b.upper))
    assert value_axes.get_yscale() == "log"  # positive, from 0.1 to 5.6: over a factor 20
    assert plot.anytime_figure(summary, log_y=False).axes[0].get_yscale() == "linear"
    assert rank_axes.get_xlabel() == "evaluations"
    assert "regret" in value_axes.get_ylabel() and "95% bootstrap CI" in value_axes.get_ylabel()
    assert [t.get_text() for t in figure.legends[0].get_texts()] == labels


def test_anytime_figure_of_raw_values_stays_linear_and_one_method_has_no_rank_panel():
    record = hand_record()
    record.runs = {"b": record.runs["b"]}
    summary = analysis.summarise(record, x="time", num_resamples=20)
    figure = plot.anytime_figure(summary, log_x=True, title="hand-made")
    (axes,) = figure.axes
    assert axes.get_yscale() == "linear" and axes.get_xscale() == "log"
    assert axes.get_xlabel() == "wall-clock time (s)" and axes.get_title() == "hand-made"
    assert axes.get_ylabel() == "best loss so far\n(median over seeds, 95% bootstrap CI)"
    single = analysis.summarise(hand_record(runs={"a": {0: [3.0, 1.0]}}), x="evals")
    assert plot.anytime_figure(single).axes[0].get_ylabel() == "best loss so far"


def test_save_figure_writes_png_and_pdf(tmp_path):
    figure = plot.anytime_figure(analysis.summarise(hand_record(), x="evals", num_resamples=20))
    written = plot.save_figure(figure, tmp_path / "figs" / "anytime.png")
    assert written == [tmp_path / "figs" / "anytime.png", tmp_path / "figs" / "anytime.pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written[1].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="must end in .png, .pdf"):
        plot.save_figure(figure, tmp_path / "anytime.svg")


def test_trials_figure_bars_span_each_trial_and_follow_lineage():
    trials = [
        trial(0, 3.0, start=100.0, end=102.0),
        trial(1, None, start=100.5, end=101.0),
        trial(2, 2.0, start=102.0, end=104.5, status="stopped"),
        trial(3, 4.0, start=104.5, end=106.0, metrics={"parent_id": 0}),
    ]
    trials[2].parent_id = 0
    figure = plot.trials_figure(Result(trials, "loss", "min"))
    axes = figure.axes[0]
    bars = axes.patches
    np.testing.assert_allclose([b.get_x() for b in bars], [0.0, 0.5, 2.0, 4.5])
    np.testing.assert_allclose([b.get_width() for b in bars], [2.0, 0.5, 2.5, 1.5])
    np.testing.assert_allclose([b.get_y() + b.get_height() / 2 for b in bars], [0, 1, 2, 3])
    expected = [plot.STATUS_COLOURS[s] for s in ("completed", "failed", "stopped", "completed")]
    assert [b.get_facecolor() for b in bars] == [to_rgba(c) for c in expected]
    # parent 0 ends at 2 s: lines to trial 2 (starts at 2 s) and trial 3 (starts at 4.5 s)
    lineage = [(tuple(line.get_xdata()), tuple(line.get_ydata())) for line in axes.lines]
    assert lineage == [((2.0, 2.0), (0, 2)), ((2.0, 4.5), (0, 3))]
    # new incumbents: trial 1 failed, so trial 0 (ends at 2 s), then trial 2 (2.0 < 3.0)
    stars = axes.collections[-1].get_offsets()
    np.testing.assert_allclose(stars, [[2.0, 0], [4.5, 2]])
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["completed", "stopped", "failed", "new best"]


def test_curves_figure_draws_every_reported_curve_by_outcome():
    reports = [{"trial_id": 0, "resource": r, "metrics": {"loss": 1.0 / r}} for r in (1, 2, 3)]
    reports += [{"trial_id": 1, "resource": 1, "metrics": {"loss": 2.0}},
                {"trial_id": 2, "resource": 2, "metrics": {"loss": 0.9}},  # resumed: reported
                {"trial_id": 2, "resource": 1, "metrics": {"loss": 1.5}},  # out of order...
                {"trial_id": 2, "resource": 2, "metrics": {"loss": 0.8}},  # ...and again
                {"trial_id": 3, "resource": 1, "metrics": {"other": 1.0}}]
    trials = [trial(0, 1 / 3), trial(1, 2.0, status="stopped"), trial(2, 0.8, status="stopped")]
    figure = plot.curves_figure(Result(trials, "loss", "min"), reports, "loss")
    axes = figure.axes[0]
    drawn = {(tuple(line.get_xdata()), tuple(line.get_ydata())): line.get_color()
             for line in axes.lines}
    assert drawn == {((1.0,), (2.0,)): plot.STATUS_COLOURS["stopped"],
                     ((1.0, 2.0), (1.5, 0.8)): plot.STATUS_COLOURS["stopped"],
                     ((1.0, 2.0, 3.0), (1.0, 0.5, 1 / 3)): "black"}  # the best trial
    assert axes.get_ylabel() == "loss"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["stopped", "best trial"]
    with pytest.raises(ValueError, match="no report of 'accuracy'"):
        plot.curves_figure(Result(trials, "loss", "min"), reports, "accuracy")


def test_pareto_figure_draws_the_non_dominated_trials():
    points = [(0.1, 50.0), (0.2, 20.0), (0.3, 30.0), (0.5, 10.0), (0.4, 40.0)]
    trials = [trial(i, e, metrics={"error": e, "latency": lat})
              for i, (e, lat) in enumerate(points)]
    trials.append(trial(5, None, metrics={"error": None, "latency": 1.0}))
    result = Result(trials, ["error", "latency"], ["min", "min"],
                    {"metric": ["error", "latency"], "mode": ["min", "min"]})
    figure = plot.pareto_figure(result, ["error", "latency"])
    axes = figure.axes[0]
    np.testing.assert_allclose(axes.collections[0].get_offsets(), points)
    (front,) = axes.lines
    np.testing.assert_allclose(front.get_xdata(), [0.1, 0.2, 0.5])
    np.testing.assert_allclose(front.get_ydata(), [50.0, 20.0, 10.0])
    assert axes.get_xlabel() == "error (lower is better)"
    # with latency maximised, only the trial of highest latency among the fastest survives
    figure = plot.pareto_figure(result, ["error", "latency"], modes=["min", "max"])
    np.testing.assert_allclose(figure.axes[0].lines[0].get_xdata(), [0.1])
    assert figure.axes[0].lines[0].get_drawstyle() == "steps-post"
    # a feasible front ignores trials that break a constraint, and shows them apart
    trials[0].feasible = False
    figure = plot.pareto_figure(result, ["error", "latency"])
    axes = figure.axes[0]
    np.testing.assert_allclose(axes.collections[1].get_offsets(), [points[0]])
    np.testing.assert_allclose(axes.lines[0].get_xdata(), [0.2, 0.5])
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "trials", "infeasible trials", "Pareto front (2 trials)"]
    with pytest.raises(ValueError, match="no trial reported both metrics"):
        plot.pareto_figure(result, ["error", "memory"])
    with pytest.raises(ValueError, match="exactly two"):
        plot.pareto_figure(result, ["error"])


def test_objective_modes_come_from_the_run_record():
    result = Result([], "acc", "max", {"metric": ["acc", "latency"], "mode": ["max", "min"]})
    assert plot.objective_modes(result, ["latency", "acc"]) == ["min", "max"]
    single = Result([], "acc", "max", {"metric": "acc", "mode": "max"})
    assert plot.objective_modes(single, ["acc", "size"]) == ["max", "min"]


def test_importing_jhpo_does_not_import_matplotlib():
    code = ("import sys, jhpo, jhpo.analysis, jhpo.experiment, jhpo.cli; "
            "print('matplotlib' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "False"
