"""raysearch: a contrastive cold-start recommender with adaptive feature fusion, tuned on Ray."""

from raysearch.export import load_model

__all__ = ["load_model"]
