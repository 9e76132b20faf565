"""The run shell: records, the ask/tell optimizer, and the loops that run trials.

- :mod:`jhpo.runs.records`: ``Trial``, ``AskRecord``, ``Result``: what a run records.
- :mod:`jhpo.runs.directory`: ``RunDirectory``, ``load_run``: the files a run keeps them in.
- :mod:`jhpo.runs.optimizer`: ``Optimizer`` (ask/tell over plain dicts, replay of records).
- :mod:`jhpo.runs.shell`: what every run shares (meta, the one trial builder, resume).
- :mod:`jhpo.runs.blackbox`: ``tune``, black-box trials, one at a time or on workers;
  :mod:`jhpo.runs.blackbox_run`: the loop of one ``tune`` call over a pool;
  :mod:`jhpo.runs.reporter`: one trial's reports judged, and what its end records.
- :mod:`jhpo.runs.pools`: what a pool of trials is, and the pool in the driver's process;
  :mod:`jhpo.runs.parallel`: ``tune``'s settings on parallel trials, which make the pool.
- :mod:`jhpo.runs.workers`, :mod:`jhpo.runs.worker`: the pool of local worker processes
  and the loop each runs; :mod:`jhpo.runs.ray_backend`: trials as Ray tasks.
- :mod:`jhpo.runs.population`: ``tune_population``, populations trained as one program.
- :mod:`jhpo.runs.schedule`: a population run's scheduler and options, checked.
- :mod:`jhpo.runs.population_loop`: the one slot loop of a population run, with a scheduler
  or without (its decisions: ``population_decisions``; slots: ``population_slots``; resume:
  ``population_checkpoints``).
"""
