"""raysearch: a contrastive cold-start recommender with adaptive feature fusion, tuned on Ray."""

from typing import Any

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    """``raysearch.load_model``, imported on first use so that ``import raysearch`` stays light."""
    if name == "load_model":
        from raysearch.export import load_model

        return load_model
    raise AttributeError(f"module 'raysearch' has no attribute {name!r}")
