"""This project's metrics as local `evaluate` modules: `evaluate.load(PATH).compute(predictions=..., references=...)`.

Each folder holds one module (FOLDER/FOLDER.py), complete in itself: evaluate copies the file into its
modules cache (HF_MODULES_CACHE) and imports it from there, so it may import installed libraries only,
never this project. Loading one by path needs no network. common.metrics.load(NAME) loads one.
"""
