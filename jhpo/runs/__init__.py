"""The run shell: records, the ask/tell optimizer, and the loops that run trials.

- :mod:`jhpo.runs.records`: ``Trial``, ``Result``, ``RunDirectory``, ``load_run``.
- :mod:`jhpo.runs.optimizer`: ``Optimizer`` (ask/tell over plain dicts, replay of records).
- :mod:`jhpo.runs.shell`: what every run shares (meta, the one trial builder, resume).
- :mod:`jhpo.runs.blackbox`: ``tune``, black-box trials one after another.
"""
