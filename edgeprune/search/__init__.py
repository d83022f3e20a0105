"""Looking for a recipe that meets a target's budgets.

``space.py`` makes candidate recipes from a base recipe; ``backoff.py`` runs the
smallest search there is: when the default recipe's deployed artifact misses
``max_accuracy_drop``, try a short ladder of gentler recipes within a budget of
time and keep the best that meets the budgets. Both are independent of how a
candidate is evaluated: the caller passes ``evaluate(candidate) -> Trial`` (the
export's compress, export, validate and budget stages, see pipeline.py), so a wider
search reuses the candidates, the :class:`~edgeprune.search.backoff.Trial` record and
:func:`~edgeprune.search.backoff.best`.
"""
