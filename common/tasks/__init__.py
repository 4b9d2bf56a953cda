"""The tasks: what one kind of data and model needs (encoding, metrics, prediction files, plots).
A recipe imports its task module; the run pipeline in common/ imports none of them."""
