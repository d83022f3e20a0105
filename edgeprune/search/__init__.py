"""Looking for a recipe that meets a target's budgets.

``space.py`` makes candidate recipes from a base recipe; ``backoff.py`` runs the
smallest search there is: when the default recipe's deployed artifact misses
``max_accuracy_drop``, try a short ladder of gentler recipes within a budget of
time and keep the best that meets the budgets. Both are independent of how a
candidate is evaluated: the caller passes ``evaluate(candidate) -> Trial`` (the
export's compress, export, validate and budget stages, see pipeline.py).

``edgeprune search`` is the wide search, on Optuna; each trial is a whole
``run_export`` of one candidate, and nothing here reaches inside it:

    command.py      the command: inputs checked once, study, workers, choice, output
    choices.py      the recipe space as Optuna parameters (candidates via space.derive)
    objective.py    objectives, constraint, ranking and Pareto fronts from a trial's report
    study.py        storage (SQLite by default), samplers, the constraints function
    runner.py       the worker loop and one trial; local processes and Ray tasks
    steps.py        the trials queued around the best one (one step more compressed, or
                    longer fine-tuning), and skipping those a better trial made pointless
    ray_local.py    a Ray head on loopback, for trying --ray on one machine (tests, benchmark)
    cache.py        trials keyed by the sha256 of model, data, target, recipe and seed
    pruning.py      the median rule that stops a hopeless trial during its fine-tuning
    recipe_toml.py  the chosen recipe as a TOML file that ``export --recipe`` reads back
    table.py        the terminal table
"""
