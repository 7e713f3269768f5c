"""Baseline recommenders with their own training, each through the shared loop of :mod:`raysearch.train.loop`
and scored by the same evaluation function. ``mf`` and ``lightgcn`` are FusionGCN with pinned settings
(:data:`raysearch.registry.MODELS`); every baseline is declared there.
"""
