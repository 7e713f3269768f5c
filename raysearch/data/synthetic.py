"""Seeded MovieLens-shaped rating sets of any size, written in ML-25M's format (``movies.csv``, ``ratings.csv``).

The large GroupLens archives cannot be fetched everywhere (tests, CI, this project's machines), so tests and
scale benchmarks train on these. What makes them MovieLens-shaped: Zipf-distributed item popularity and user
activity, 1-3 of the 18 MovieLens genres per item, and users who draw part of their ratings from one favourite
genre, so item attributes carry signal a cold-item model can learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raysearch.atomic_files import atomic_dir
from raysearch.data.movielens import NO_GENRES
from raysearch.data.synthetic_shape import MIN_RATINGS, Shape

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
def generate(shape: Shape) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``movies`` (movieId, title, genres) and ``ratings`` (userId, movieId, rating, timestamp) frames."""
    rng = np.random.default_rng(shape.seed)
    genres = _item_genres(rng, shape.items)
    popularity = _zipf(rng, shape.items, shape.item_zipf)
    favourite = rng.integers(len(GENRES), size=shape.users)
    pairs = np.empty(0, dtype=np.int64)
    while len(pairs) < shape.ratings:  # draws repeat pairs; draw again until there are enough distinct ones
        users = _user_draws(rng, shape, shape.ratings - len(pairs))
        items = _item_draws(rng, users, favourite, genres, popularity, shape.genre_affinity)
        pairs = np.unique(np.concatenate([pairs, users * shape.items + items]))
    pairs = np.sort(rng.choice(pairs, shape.ratings, replace=False))
    users, items = pairs // shape.items, pairs % shape.items
    liked = genres[items, favourite[users]]
    stars = np.clip(np.round((3.2 + liked + rng.normal(0, 1, len(pairs))) * 2) / 2, 0.5, 5.0)
    ratings = pd.DataFrame({"userId": users + 1, "movieId": items + 1, "rating": stars,
                            "timestamp": 1_000_000_000 + rng.integers(0, 600_000_000, len(pairs))})
    years = rng.integers(1930, 2020, shape.items)
    names = ["|".join(g for g, on in zip(GENRES, row) if on) or NO_GENRES for row in genres]
    movies = pd.DataFrame({"movieId": np.arange(1, shape.items + 1),
                           "title": [f"Movie {i + 1}, part {i % 3 + 1} ({y})" for i, y in enumerate(years)],
                           "genres": names})
    return movies, ratings


def write(shape: Shape, folder: Path) -> tuple[int, int]:
    """Write the set to ``folder`` (replaced as a whole once complete); returns (movies, ratings) written."""
    movies, ratings = generate(shape)
    with atomic_dir(Path(folder)) as tmp:
        movies.to_csv(tmp / "movies.csv", index=False)
        ratings.to_csv(tmp / "ratings.csv", index=False)
    return len(movies), len(ratings)


def _zipf(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Weights ``rank^-exponent`` over ``n`` entities in random order, summing to 1."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return rng.permutation(weights / weights.sum())


def _item_genres(rng: np.random.Generator, items: int) -> np.ndarray:
    """bool [items, genres]: one main genre each, and a second and third with chance 0.4 and 0.15."""
    genres = np.zeros((items, len(GENRES)), dtype=bool)
    for chance in (1.0, 0.4, 0.15):
        chosen = rng.random(items) < chance
        genres[np.flatnonzero(chosen), rng.integers(len(GENRES), size=int(chosen.sum()))] = True
    return genres


def _user_draws(rng: np.random.Generator, shape: Shape, count: int) -> np.ndarray:
    """About ``count`` user indices: every user MIN_RATINGS times, the rest by Zipf activity."""
    extra = max(count - MIN_RATINGS * shape.users, count // 4)
    active = rng.choice(shape.users, size=extra, p=_zipf(rng, shape.users, shape.user_zipf))
    return np.concatenate([np.repeat(np.arange(shape.users), MIN_RATINGS), active])


def _item_draws(rng: np.random.Generator, users: np.ndarray, favourite: np.ndarray, genres: np.ndarray,
                popularity: np.ndarray, affinity: float) -> np.ndarray:
    """One movie per draw: by popularity among the user's favourite genre with chance ``affinity``, else overall."""
    items = rng.choice(len(popularity), size=len(users), p=popularity)
    themed = rng.random(len(users)) < affinity
    for genre in range(genres.shape[1]):
        pick = themed & (favourite[users] == genre)
        members = np.flatnonzero(genres[:, genre])
        if pick.any() and len(members):
            weights = popularity[members] / popularity[members].sum()
            items[pick] = rng.choice(members, size=int(pick.sum()), p=weights)
    return items
