"""Command-line tools, each run as `python -m common.tools.NAME`: demo data, copying a recipe,
export, batch prediction, ensembling."""
