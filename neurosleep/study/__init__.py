"""Studies: searches over protocol keys × seeds on Dask, a SQLite ledger, reports.

:mod:`~neurosleep.study.spec` loads and validates study files; :mod:`~neurosleep.study.driver`
runs them (the ledger's only writer); :mod:`~neurosleep.study.execute` is what a worker runs;
:mod:`~neurosleep.study.report` turns a study folder into tables, a summary and figures.
docs/studies.md is the reference.
"""
