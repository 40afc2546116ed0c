"""keras-simclr's benchmarks: run each from the repository root as `python -m benchmarks.<name>`.

`benchmarks/README.md` describes them and their flags; `BENCHMARKS.md` holds the figures.
"""
