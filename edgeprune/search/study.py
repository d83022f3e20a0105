"""The Optuna study: storage, sampler, directions, constraint.

The study lives in SQLite in the output folder by default (``OUT/TARGET.search/study.db``),
so an interrupted search resumes where it stopped and a rerun with the same inputs
finds its trials there; ``--storage URL`` (any SQLAlchemy URL Optuna takes, e.g.
``postgresql://user@db/edgeprune``, or a SQLite file on a shared disk) shares one study
between processes and machines. The study's name is derived from the inputs, the base
recipe and the space, so one database holds the searches of many models and targets
side by side, and never mixes them.
"""

from __future__ import annotations

from pathlib import Path

DIRECTIONS = ("minimize", "minimize")      # deployed gzip bytes, target cost
SAMPLERS = ("tpe", "nsga2")


def default_storage(folder: Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'study.db'}"


def storage(url: str):
    """An Optuna storage for ``url``; SQLite waits for a lock (many workers write to one file)."""
    import optuna

    if url.startswith("sqlite:"):
        store = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
        _immediate(store.engine)
        return store
    return optuna.storages.RDBStorage(url)


def _immediate(engine) -> None:
    """Every SQLite transaction takes the write lock when it begins (BEGIN IMMEDIATE).

    Python's sqlite3 reads outside a transaction, so two processes could both read an
    enqueued trial as waiting and both run it (the second then fails with "Cannot tell a
    COMPLETE trial", seen with two workers); with the lock taken first, Optuna's
    read-then-update of a trial's state is atomic across processes."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None      # the driver issues no BEGIN of its own

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()                                 # connections made before this: reopened


def constraints(frozen) -> list[float]:
    """Optuna's constraints_func: <= 0 is feasible (every budget met)."""
    return [float(frozen.user_attrs.get("violation", 1.0))]


def sampler(name: str, seed: int):
    import warnings

    import optuna

    # constraints_func, multivariate and group are marked experimental; their use here is plain
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints,
                                             population_size=8)
    return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints, multivariate=True,
                                      group=True, n_startup_trials=6)


def open_study(url: str, name: str, sampler_name: str, seed: int):
    import optuna

    # ERROR: Optuna logs a trial that raised as a WARNING with its traceback; edgeprune says
    # what failed itself (the trial's error in the report, the worker's error line)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(storage=storage(url), study_name=name, directions=list(DIRECTIONS),
                               sampler=sampler(sampler_name, seed), load_if_exists=True)


def fail_stale(study) -> int:
    """Mark trials left RUNNING by a killed search as failed (call only when no worker of
    this study runs elsewhere: the default, private storage). Returns how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return len(stale)


def redact(url: str) -> str:
    """``url`` with any password hidden (it goes into report.json)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:          # not a URL SQLAlchemy reads: Optuna will say so
        return url
