"""Music Zoo's benchmarks: the zoo's training, feature extraction and data loading, each timed
against a plain baseline run in the same process, reported as ratios (see bench/README.md).

Run everything with ``python bench/run.py [--quick] [--out docs/benchmarks.md]``.
"""
