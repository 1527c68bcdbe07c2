"""The training engine: device, batches, the loop, evaluation, reports, tracking and packaging.

The model owns the math (forward, loss, metrics: :mod:`zoo.model`, the tasks); the engine owns
the loop, the device and precision, normalisation, checkpoints, reports and what it tells a tracker
(:mod:`zoo.tracking`, the interface only; MLflow lives in :mod:`zoo.tracking.mlflow`). Nothing
here is imported by ``import zoo``: torch loads only when a run starts.

Modules, one job each:

- :mod:`~zoo.engine.request`      ``RunRequest``: what one ``zoo run`` is asked to do, frozen and checked
- :mod:`~zoo.engine.runner`       carries a request out: compose, prepare, train per seed, evaluate, log
- :mod:`~zoo.engine.runconfig`    a run's configuration as a file (``--config``, ``--print-config``, ``config.yaml``)
- :mod:`~zoo.engine.reporting`    the ``Reporter`` callbacks a run reports through (the loop never prints)
- :mod:`~zoo.engine.trainconfig`  ``TrainConfig``, backbone-recommended settings, ``--set`` scopes, task weights
- :mod:`~zoo.engine.device`       which device, precision and CPU thread count a run uses
- :mod:`~zoo.engine.distributed`  several processes through torchrun: ranks, gathering, failures
- :mod:`~zoo.engine.seeds`        seeding python, numpy and torch
- :mod:`~zoo.engine.batches`      normalisation and device-resident padded splits
- :mod:`~zoo.engine.augment`      training-time masks, mixup, crops, class balance, the monitored metric
- :mod:`~zoo.engine.train`        the optimisation loop (early stopping, overfit check)
- :mod:`~zoo.engine.checkpoint`   the per-epoch checkpoint that ``zoo run --resume`` continues from
- :mod:`~zoo.engine.metrics`      predictions and metrics on a split
- :mod:`~zoo.engine.reports`      classification report, metrics.json and plots on disk
- :mod:`~zoo.engine.plots`        the PNG figures
- :mod:`~zoo.engine.package`      the packaged model folder (``zoo_model.json`` + ``weights.pt``)
- :mod:`~zoo.engine.freezing`     a backbone's blocks (declared or guessed) and freezing the first N
- :mod:`~zoo.engine.transfer`     starting a backbone from a trained model's weights
- :mod:`~zoo.engine.datasource`   where a run's data came from, so it can be prepared again
- :mod:`~zoo.engine.intervals`    mean and t-interval over seeds
- :mod:`~zoo.engine.scoring`      scoring a packaged model on a data set (``zoo.evaluate``)
"""
