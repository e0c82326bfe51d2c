"""Reports: the complete runs of one scale -> Markdown / LaTeX / CSV tables and figures,
beside the paper's numbers. One renderer per table or figure, reading each run's typed
configuration back from the ``config.json`` stored with it.

A report says only what the store holds and runs only the user's own code:

- a stored ``config.json`` is data: its ``plugins`` are never imported; the report
  imports the installed packages' entry points and the plugins of this installation's
  experiment files, and a run naming a task or model those leave unregistered is left
  out and named in the index (:mod:`.stored`);
- runs of one task, variant and seed with different settings get a row each and are
  never paired in each other's place (:mod:`.conflicts`);
- a report replaces the whole set of files the previous report wrote, removing those it
  does not write again, and never overwrites a file no report wrote (:mod:`.output`).
"""
