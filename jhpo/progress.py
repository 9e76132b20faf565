"""One progress bar for long work, quiet when output is not a terminal."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int | None, *, enabled: bool = True, initial: int = 0, unit: str = "trial",
                 desc: str = "jhpo"):
    """A tqdm bar on stderr showing count, elapsed time and a postfix (the best so far).

    Disabled when ``enabled`` is false or stderr is not a terminal (CI logs, pipes)."""
    return tqdm(
        total=total,
        initial=initial,
        unit=unit,
        desc=desc,
        disable=not (enabled and sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=True,
    )
