"""The synthetic MovieLens-shaped generator (raysearch/data/synthetic.py) and `raysearch synthesize`."""

import numpy as np
import pytest

from raysearch.cli import main
from raysearch.data import synthetic
from raysearch.data.movielens import load_dataset
from raysearch.data.synthetic_shape import MIN_RATINGS, Shape
from raysearch.errors import ConfigError

SMALL = Shape(users=300, items=200, ratings=9_000, seed=3)


def test_same_seed_same_set_and_another_seed_another():
    movies, ratings = synthetic.generate(SMALL)
    again_movies, again_ratings = synthetic.generate(SMALL)
    assert movies.equals(again_movies) and ratings.equals(again_ratings)
    other = synthetic.generate(Shape(users=300, items=200, ratings=9_000, seed=4))[1]
    assert not ratings[["userId", "movieId"]].equals(other[["userId", "movieId"]])


def test_exact_size_distinct_pairs_every_user_active_and_skewed_popularity():
    _, ratings = synthetic.generate(SMALL)
    assert len(ratings) == 9_000 and not ratings.duplicated(["userId", "movieId"]).any()
    per_user = ratings.groupby("userId").size()
    assert len(per_user) == 300 and per_user.min() >= 1
    per_item = np.sort(ratings.groupby("movieId").size().to_numpy())[::-1]
    assert per_item[0] > 5 * np.median(per_item)  # Zipf popularity: the head is far above the median
    assert set(ratings["rating"]) <= {x / 2 for x in range(1, 11)}


def test_written_set_loads_as_dataset_synthetic_through_the_cli(tmp_path, capsys):
    assert main(["synthesize", "--data-dir", str(tmp_path), "--users", "300", "--items", "200", "--ratings",
                 "9000", "--seed", "3"]) == 0
    assert "9000 ratings of 300 users" in capsys.readouterr().out
    dataset = load_dataset("synthetic", tmp_path / "synthetic")
    assert (dataset.num_users, len(dataset.interactions)) == (300, 9_000)
    assert [f.name for f in dataset.item_fields] == ["genres", "year", "title"]


def test_impossible_sizes_are_refused_with_the_bounds():
    with pytest.raises(ConfigError, match=rf"key 'ratings' = 10 must be in {MIN_RATINGS * 300}\.\.30000"):
        Shape(users=300, items=200, ratings=10)
