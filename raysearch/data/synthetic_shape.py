"""The parameters of a synthetic MovieLens-shaped set (:mod:`raysearch.data.synthetic` generates it). Kept apart
and light: the CLI builds ``raysearch synthesize``'s flags from them without loading numpy or pandas."""

from __future__ import annotations

from dataclasses import dataclass

from raysearch.errors import check

MIN_RATINGS = 5  # ratings of the least active user (GroupLens keeps users with at least 20; small sets need fewer)


@dataclass(frozen=True)
class Shape:
    """The parameters of one synthetic set (the defaults: the 5M-rating set of the scale benchmarks)."""

    users: int = 30_000  # users with at least MIN_RATINGS ratings each
    items: int = 10_000  # movies; the least popular may end up unrated (and so not indexed)
    ratings: int = 5_000_000  # distinct (user, movie) ratings, exactly
    item_zipf: float = 1.0  # popularity exponent: the movie of popularity rank r is drawn with weight r^-item_zipf
    user_zipf: float = 0.6  # activity exponent: the user of activity rank r rates in proportion to r^-user_zipf
    genre_affinity: float = 0.5  # share of a user's draws made among the movies of their favourite genre
    seed: int = 0  # seeds everything

    def __post_init__(self) -> None:
        check("users", self.users, self.users >= 1, "must be >= 1")
        check("items", self.items, self.items >= 1, "must be >= 1")
        low, high = MIN_RATINGS * self.users, self.users * self.items // 2
        check("ratings", self.ratings, low <= self.ratings <= high,
              f"must be in {low}..{high} ({MIN_RATINGS} per user .. half of users x items)")
        check("item_zipf", self.item_zipf, self.item_zipf >= 0, "must be >= 0")
        check("user_zipf", self.user_zipf, self.user_zipf >= 0, "must be >= 0")
        check("genre_affinity", self.genre_affinity, 0 <= self.genre_affinity <= 1, "must be in [0, 1]")
