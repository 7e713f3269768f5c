"""Baseline recommenders, each trained on the same splits and scored by the same evaluation function.

``mf`` and ``lightgcn`` are configurations of :class:`raysearch.model.FusionGCN` (see
:data:`raysearch.config.MODEL_PINS`); the modules here hold the models with their own training.
"""
