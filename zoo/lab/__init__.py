"""The university lab the zoo grows out of, reproduced: latent maps and ``zoo reproduce lab``.

Nothing here loads at ``import zoo``; each module imports torch, MLflow or matplotlib only
inside the functions that need them. Modules, one job each:

- :mod:`~zoo.lab.embed`      latent maps: the layer before the output for every clip, in 2-D, as PNG + CSV
- :mod:`~zoo.lab.project`    PCA, t-SNE and UMAP projections to 2-D
- :mod:`~zoo.lab.mapplot`    the scatter figure of a latent map
- :mod:`~zoo.lab.plan`       which lab recipes ``zoo reproduce lab`` runs, in which order
- :mod:`~zoo.lab.reproduce`  run the plan over several seeds, collect outcomes (failures included)
- :mod:`~zoo.lab.report`     the one markdown report: the lab's tables, the zoo's numbers beside them
"""
