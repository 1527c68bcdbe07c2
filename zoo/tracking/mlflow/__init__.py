"""Everything MLflow-specific, in one place: the tracker, pyfunc models, the registry, store look-ups, UI, compare.

The engine knows only :mod:`zoo.tracking` (the interface); callers that want MLflow construct
:class:`~zoo.tracking.mlflow.tracker.MlflowTracker` themselves. Modules, one job each:

- :mod:`~zoo.tracking.mlflow.store`           the store's client, experiments and their artifact folders
- :mod:`~zoo.tracking.mlflow.tracker`         ``MlflowTracker``: runs, their data set, their model and pyfunc model
- :mod:`~zoo.tracking.mlflow.pyfunc`          a packaged model as an MLflow pyfunc model (``ZooPyfunc``)
- :mod:`~zoo.tracking.mlflow.model_registry`  registering a run's pyfunc model by name (``zoo register``)
- :mod:`~zoo.tracking.mlflow.queries`         look-ups in the store: a run's model, latest runs, seed runs, tags
- :mod:`~zoo.tracking.mlflow.ui`              starting and stopping the MLflow web UI (``zoo ui``)
- :mod:`~zoo.tracking.mlflow.compare`         the table of tracked runs behind ``zoo compare``
- :mod:`~zoo.tracking.mlflow.reconcile`       ghost runs: RUNNING runs whose process is gone are ended KILLED

Nothing here is imported by ``import zoo``; MLflow loads when one of these modules is used.
"""
