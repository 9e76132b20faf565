import io
import logging
import sys

import pytest

from jhpo.progress import (
    DEFAULT_LOG_EVERY_S,
    LOG_EVERY_ENV,
    LogProgress,
    TerminalProgress,
    log_interval,
    progress_bar,
)


class FakeClock:
    """Seconds that move only when a test moves them."""

    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append((record.name, record.levelno, record.getMessage()))


@pytest.fixture
def jhpo_logger():
    """The ``jhpo`` logger with a collecting handler, its level and handlers restored after."""
    logger = logging.getLogger("jhpo")
    handler = Collect()
    level = logger.level
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def stderr_into(monkeypatch, stream):
    """Point sys.stderr at ``stream`` (inside a test's body: pytest's own capture resets
    sys.stderr between setting fixtures up and running the test)."""
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def messages(handler):
    return [message for _, _, message in handler.messages]


def test_logs_a_start_line_then_one_per_interval_then_an_end_line(jhpo_logger, monkeypatch):
    not_a_terminal = stderr_into(monkeypatch, io.StringIO())
    _, handler = jhpo_logger
    clock = FakeClock()
    with progress_bar(10, desc="digits asha", clock=clock, log_every_s=30) as bar:
        assert isinstance(bar, LogProgress)
        assert messages(handler) == ["digits asha: started, 0/10 trials done"]

        def trial_ends(seconds, best):  # as the tuners do: count, then the note
            clock.now += seconds
            bar.update(1)
            bar.set_postfix_str(f"best {best}")

        trial_ends(10, 0.5)  # 10 s: not yet
        assert len(handler.messages) == 1
        trial_ends(20, 0.25)  # 30 s after the start line: the note is the newest
        trial_ends(5, 0.25)  # 5 s after the last line
        trial_ends(24.9, 0.125)  # 29.9 s after it
        trial_ends(0.1, 0.0625)  # 30 s after it
        bar.set_failures(2)
        clock.now += 1
    assert messages(handler) == [
        "digits asha: started, 0/10 trials done",
        "digits asha: 2/10 trials, best 0.25, elapsed 30.0 s",
        "digits asha: 5/10 trials, best 0.0625, elapsed 60.0 s",
        "digits asha: finished, 5/10 trials, best 0.0625, 2 failed, elapsed 61.0 s",
    ]
    assert {(name, level) for name, level, _ in handler.messages} == {("jhpo", logging.INFO)}
    assert not_a_terminal.getvalue() == ""  # the configured handler got them, not stderr


def test_a_caller_without_notes_gets_its_lines_on_update(jhpo_logger, monkeypatch):
    stderr_into(monkeypatch, io.StringIO())
    _, handler = jhpo_logger
    clock = FakeClock()
    with progress_bar(3, clock=clock, log_every_s=2) as bar:
        clock.now += 2
        bar.update(1)
        clock.now += 1
        bar.update(1)
    assert messages(handler) == ["started, 0/3 trials done", "1/3 trials, elapsed 2.0 s",
                                 "finished, 2/3 trials, elapsed 3.0 s"]


def test_resumed_run_without_a_total_and_an_interrupted_end(jhpo_logger, monkeypatch):
    stderr_into(monkeypatch, io.StringIO())
    _, handler = jhpo_logger
    clock = FakeClock()
    with pytest.raises(KeyboardInterrupt):
        with progress_bar(None, initial=4, unit="run", desc="experiment", clock=clock) as bar:
            clock.now += 7.25
            bar.update(1)
            raise KeyboardInterrupt
    assert messages(handler) == ["experiment: started, 4 runs done",
                                 "experiment: stopped, 5 runs, elapsed 7.2 s"]


def test_failures_appear_in_periodic_lines_only_when_there_are_some(jhpo_logger, monkeypatch):
    stderr_into(monkeypatch, io.StringIO())
    _, handler = jhpo_logger
    clock = FakeClock()
    with progress_bar(4, clock=clock, log_every_s=1) as bar:
        bar.set_failures(0)
        clock.now += 1
        bar.update(1)
        bar.set_failures(1)
        clock.now += 1
        bar.update(1)
    assert messages(handler)[1:] == ["1/4 trials, elapsed 1.0 s",
                                     "2/4 trials, 1 failed, elapsed 2.0 s",
                                     "finished, 2/4 trials, 1 failed, elapsed 2.0 s"]


def test_interval_comes_from_the_environment_and_the_keyword_wins(monkeypatch):
    monkeypatch.delenv(LOG_EVERY_ENV, raising=False)
    assert log_interval() == DEFAULT_LOG_EVERY_S == 30
    monkeypatch.setenv(LOG_EVERY_ENV, "2.5")
    assert log_interval() == 2.5
    assert log_interval(7) == 7.0


def test_interval_from_the_environment_spaces_the_lines(monkeypatch, jhpo_logger):
    stderr_into(monkeypatch, io.StringIO())
    _, handler = jhpo_logger
    monkeypatch.setenv(LOG_EVERY_ENV, "5")
    clock = FakeClock()
    with progress_bar(3, clock=clock) as bar:
        clock.now += 4
        bar.update(1)
        clock.now += 1
        bar.update(1)
    assert messages(handler)[1] == "2/3 trials, elapsed 5.0 s"
    assert len(handler.messages) == 3


@pytest.mark.parametrize("text", ["soon", "0", "-3", "nan"])
def test_a_bad_interval_in_the_environment_names_the_variable(monkeypatch, text):
    monkeypatch.setenv(LOG_EVERY_ENV, text)
    with pytest.raises(ValueError, match=f"{LOG_EVERY_ENV}=.* must be a positive number"):
        log_interval()


def test_a_bad_interval_keyword_names_the_keyword():
    with pytest.raises(ValueError, match="log_every_s=0 must be a positive number"):
        log_interval(0)


def test_setting_the_jhpo_level_to_warning_silences_the_lines(jhpo_logger, monkeypatch):
    not_a_terminal = stderr_into(monkeypatch, io.StringIO())
    logger, handler = jhpo_logger
    logger.setLevel(logging.WARNING)
    with progress_bar(2, clock=FakeClock()) as bar:
        bar.update(2)
    assert handler.messages == []
    assert not_a_terminal.getvalue() == ""


def test_lines_are_shown_even_when_the_root_logger_stops_at_warning(jhpo_logger, monkeypatch):
    _, handler = jhpo_logger
    stderr_into(monkeypatch, io.StringIO())
    level = logging.root.level
    logging.root.setLevel(logging.WARNING)  # as absl's implicit basicConfig() leaves it
    try:
        with progress_bar(1, clock=FakeClock()) as bar:
            bar.update(1)
    finally:
        logging.root.setLevel(level)
    assert len(handler.messages) == 2


def test_without_any_handler_the_lines_reach_stderr_and_configuring_later_does_not_repeat_them(
        monkeypatch):
    not_a_terminal = stderr_into(monkeypatch, io.StringIO())
    logger = logging.getLogger("jhpo")
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logger, "handlers", [])
    clock = FakeClock()
    with progress_bar(2, clock=clock) as bar:
        clock.now += 3
        bar.update(2)
    lines = not_a_terminal.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("jhpo: started, 0/2 trials done")
    assert lines[1].endswith("jhpo: finished, 2/2 trials, elapsed 3.0 s")
    assert logger.handlers == [] and logging.root.handlers == []  # nothing was attached

    handler = Collect()
    monkeypatch.setattr(logging.root, "handlers", [handler])  # the program configures logging
    with progress_bar(1, clock=clock) as bar:
        bar.update(1)
    assert len(handler.messages) == 2
    assert len(not_a_terminal.getvalue().splitlines()) == 2  # no copy on stderr


def test_a_terminal_gets_the_bar_and_no_log_lines(jhpo_logger, monkeypatch):
    _, handler = jhpo_logger
    terminal = stderr_into(monkeypatch, Terminal())
    with progress_bar(10, desc="digits", clock=FakeClock(), log_every_s=1e-9) as bar:
        assert isinstance(bar, TerminalProgress)
        bar.update(3)
        bar.set_postfix_str("best 0.125")
        bar.set_failures(2)
    drawn = terminal.getvalue()
    assert "digits" in drawn and "3/10" in drawn and "best 0.125, 2 failed" in drawn
    assert handler.messages == []


def test_disabled_progress_prints_and_logs_nothing(jhpo_logger, monkeypatch):
    _, handler = jhpo_logger
    for stream in (Terminal(), io.StringIO()):
        stderr_into(monkeypatch, stream)
        with progress_bar(5, enabled=False) as bar:
            bar.update(5)
            bar.set_postfix_str("best 1")
            bar.set_failures(1)
        assert stream.getvalue() == ""
    assert handler.messages == []
