"""Analysis of run files: continual-learning metrics, spike statistics, tables, figures, exports.

Pure functions over the arrays :mod:`neurosleep.io.runfile` reads; nothing here imports an engine.
"""
