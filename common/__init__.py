"""Shared code of the recipes. This package is the run pipeline (args, data, labels, modeling, training,
reports, ...), the same for every task; tasks/ holds the task modules, techniques/ the flag techniques,
tools/ the `python -m` commands (README.md, Layout)."""
