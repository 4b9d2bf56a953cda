"""Shared pieces of the recipes: each module is one concept (args, data, labels, metrics, ...)."""
