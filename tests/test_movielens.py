import re
from pathlib import Path

import numpy as np
import pytest

from raysearch.config import TrainConfig
from raysearch.data.movielens import load_dataset, load_for
from raysearch.data.readers import read_ratings
from raysearch.errors import ConfigError, DataError


def test_ml100k_counts_ids_and_fields(ml100k):
    assert (ml100k.num_users, ml100k.num_items, len(ml100k.interactions)) == (943, 1682, 100000)
    assert ml100k.user_ids[0] == 1 and ml100k.item_ids[-1] == 1682
    assert [f.name for f in ml100k.user_fields] == ["gender", "age", "occupation", "zip_region"]
    assert [f.name for f in ml100k.item_fields] == ["genres", "year", "title"]
    genres = ml100k.item_fields[0]
    toy_story = [genres.vocab[t] for t in genres.bag(0)]
    assert ml100k.item_titles[0] == "Toy Story (1995)"
    assert toy_story == ["Animation", "Children's", "Comedy"]
    year = ml100k.item_fields[1]
    assert year.vocab[year.bag(0)[0]] == "1995-1999"
    gender = ml100k.user_fields[0]
    assert gender.vocab[gender.bag(0)[0]] == "M"  # user 1: 24|M|technician|85711
    age = ml100k.user_fields[1]
    assert age.vocab[age.bag(0)[0]] == "18-24"
    assert len(np.unique(ml100k.interactions, axis=0)) == 100000


def test_ml1m_without_timestamps(data_root):
    ml1m = load_dataset("ml-1m", data_root / "ml-1m")
    assert (ml1m.num_users, ml1m.num_items, len(ml1m.interactions)) == (6040, 3706, 1000209)
    assert ml1m.has_timestamps is False
    occupation = ml1m.user_fields[2]
    assert occupation.vocab[occupation.bag(0)[0]] == "K-12 student"  # user 1: 1::F::1::10::48067
    assert ml1m.item_titles[0] == "Toy Story (1995)"


def test_rating_threshold_keeps_only_high_ratings(data_root):
    high = load_dataset("ml-100k", data_root / "ml-100k", rating_threshold=4)
    assert len(high.interactions) == 34174 + 21201  # ratings 4 and 5 (data README)


def test_year_spans_give_one_year_token_per_width(data_root):
    fine = load_dataset("ml-100k", data_root / "ml-100k", year_spans=(1, 5)).item_fields[1]
    assert fine.kind == "multi"
    assert [fine.vocab[t] for t in fine.bag(0)] == ["1995", "1995-1999"]  # Toy Story (1995)
    single = load_dataset("ml-100k", data_root / "ml-100k", year_spans=(10,)).item_fields[1]
    assert single.kind == "categorical" and single.vocab[single.bag(0)[0]] == "1990-1999"
    with pytest.raises(ConfigError, match=r"key 'year_spans' = \(5, 5\) must be a non-empty list of distinct"):
        TrainConfig.from_dict({"year_spans": [5, 5]})


def _copy_ml100k(data_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.data", "u.user", "u.item", "u.genre", "u.occupation"):
        (folder / name).write_bytes((data_root / "ml-100k" / name).read_bytes())
    return folder


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = text.encode("latin-1")
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("file, line, text, message", [
    ("u.data", 3, "22 377 1 878887116", "u.data, line 3: expected 4 fields separated by '\\t', found 1"),
    ("u.data", 5, "166\t346\t1", "u.data, line 5: expected 4 fields separated by '\\t', found 3"),
    ("u.data", 7, "abc\t1\t5\t874965758", "u.data, line 7: user id 'abc' is not an integer"),
    ("u.data", 9, "5000\t1\t5\t874965758", "u.data, line 9: user id 5000 is not in the user attribute file"),
    ("u.data", 9, "1\t99999\t5\t874965758", "u.data, line 9: item id 99999 is not in the item attribute file"),
    ("u.data", 2, "186\t302\tgood\t891717742", "u.data, line 2: rating 'good' is not a number"),
    ("u.user", 4, "4|24|M|astronaut|43537", "u.user, line 4: occupation 'astronaut' is not listed"),
    ("u.item", 2, "2|GoldenEye (1995)|01-Jan-1995", "u.item, line 2: expected 24 fields"),
])
def test_bad_input_names_file_and_line(data_root, tmp_path, file, line, text, message):
    folder = _copy_ml100k(data_root, tmp_path)
    _replace_line(folder / file, line, text)
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", folder)
    assert str(err.value).startswith(str(folder / file)) and message in str(err.value)


def test_missing_and_empty_files(data_root, tmp_path):
    folder = _copy_ml100k(data_root, tmp_path)
    (folder / "u.data").write_text("\n\n")
    with pytest.raises(DataError, match="u.data: file is empty"):
        load_dataset("ml-100k", folder)
    (folder / "u.data").unlink()
    with pytest.raises(DataError, match="u.data: file not found"):
        load_dataset("ml-100k", folder)


def test_ml1m_bad_separator_and_encoding(data_root, tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    for name in ("users.dat", "movies.dat"):
        (folder / name).write_bytes((data_root / "ml-1m" / name).read_bytes())
    (folder / "ratings.csv").write_text("UserID,MovieID,Rating\n1,1,5\n1;48;5\n")
    with pytest.raises(DataError, match=r"ratings.csv, line 3: expected 3 fields separated by ','"):
        load_dataset("ml-1m", folder)
    (folder / "ratings.csv").write_bytes(b"UserID,MovieID,Rating\n1,1,5\n1,48,\xff5\n")
    with pytest.raises(DataError, match=r"ratings.csv, line 3: not valid utf-8 text"):
        load_dataset("ml-1m", folder)


def test_duplicate_ratings_are_merged(data_root, tmp_path):
    folder = _copy_ml100k(data_root, tmp_path)
    with (folder / "u.data").open("a") as f:
        f.write("196\t242\t3\t881250949\n")  # the first line again
    assert len(load_dataset("ml-100k", folder).interactions) == 100000


def test_a_config_chooses_the_fields_models_see(data_root, ml100k):
    config = TrainConfig()
    dataset = load_for(config, data_root)
    assert [f.name for f in dataset.user_fields] == ["gender", "age", "occupation", "zip_region"]
    assert [f.name for f in dataset.item_fields] == ["genres", "year"]  # title words are opt-in
    chosen = ml100k.with_fields(["zip_region"], ["title", "genres"])
    assert [f.name for f in chosen.item_fields] == ["title", "genres"] and chosen.user_fields[0] is ml100k.user_fields[3]
    with pytest.raises(ConfigError, match="key 'item_fields': ml-100k has no field 'plot'; its fields: genres, year, title"):
        ml100k.with_fields(["gender"], ["plot"])
    with pytest.raises(ConfigError, match="user_fields"):
        TrainConfig.from_dict({"user_fields": ["gender", "gender"]})


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


ML25M_MOVIES = 'movieId,title,genres\n1,"Toy Story (1995)",Adventure|Animation\n2,"Heat, The (1995)",(no genres listed)\n'
ML25M_RATINGS = "userId,movieId,rating,timestamp\n7,1,4.5,1\n7,2,3.0,2\n9,2,0.5,3\n"


@pytest.mark.parametrize("name", ["ml-20m", "ml-25m", "synthetic"])
def test_ml25m_format_has_items_fields_and_one_anonymous_user_field(tmp_path, name):
    dataset = load_dataset(name, _write(tmp_path / name, {"movies.csv": ML25M_MOVIES, "ratings.csv": ML25M_RATINGS}))
    assert (dataset.num_users, dataset.num_items) == (2, 2) and dataset.interactions.tolist() == [[0, 0], [0, 1], [1, 1]]
    assert dataset.item_titles == ("Toy Story (1995)", "Heat, The (1995)")
    genres = dataset.item_fields[0]
    assert [genres.vocab[t] for t in genres.bag(0)] == ["Adventure", "Animation"] and genres.bag(1) == [0]
    assert [f.name for f in dataset.user_fields] == ["anonymous"] and dataset.user_fields[0].tokens.tolist() == [0, 0]


def test_ml10m_format_reads_double_colon_files_with_half_stars(tmp_path):
    folder = _write(tmp_path / "ml-10m", {"movies.dat": "1::Toy Story (1995)::Adventure|Animation\n2::Heat (1995)::Action\n",
                                          "ratings.dat": "5::1::4.5::838985046\n5::2::2.5::838983525\n"})
    dataset = load_dataset("ml-10m", folder, rating_threshold=3)
    assert dataset.interactions.tolist() == [[0, 0]] and dataset.item_ids.tolist() == [1]


@pytest.mark.parametrize("name, file, text, message", [
    ("ml-25m", "ratings.csv", ML25M_RATINGS.replace("9,2,0.5,3", "9,2,x,3"), "ratings.csv, line 4: rating 'x' is not a number"),
    ("ml-25m", "ratings.csv", ML25M_RATINGS.replace("7,2,3.0,2", "7,2,3.0"), "ratings.csv, line 3: expected 4 fields"),
    ("ml-25m", "ratings.csv", ML25M_RATINGS.replace("9,2", "9,3"), "ratings.csv, line 4: item id 3 is not in the item"),
    ("ml-25m", "movies.csv", ML25M_MOVIES.replace("movieId,", "id,"), "movies.csv, line 1: expected the header movieId"),
    ("ml-25m", "movies.csv", ML25M_MOVIES.replace("2,", "two,"), "movies.csv, line 3: movie id 'two' is not an integer"),
    ("ml-10m", "ratings.dat", "5::1::4.5::1\n5:1::4.5::2\n", "ratings.dat, line 2: expected 4 fields separated by '::'"),
])
def test_bad_large_set_files_are_named_with_file_and_line(tmp_path, name, file, text, message):
    files = ({"movies.csv": ML25M_MOVIES, "ratings.csv": ML25M_RATINGS} if name == "ml-25m" else
             {"movies.dat": "1::Toy Story (1995)::Animation\n", "ratings.dat": "5::1::4.5::1\n"})
    folder = _write(tmp_path / name, {**files, file: text})
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset(name, folder)


def test_the_fast_ratings_reader_agrees_with_the_line_by_line_one(data_root, tmp_path):
    """ML-100K's u.data read by the C parser, and again with one blank line added, which only the line-by-line
    reader accepts (it skips blank lines): the same pairs, indexed by the same line numbers."""
    fast = read_ratings(data_root / "ml-100k" / "u.data", "\t", (4,))
    text = (data_root / "ml-100k" / "u.data").read_text()
    (tmp_path / "u.data").write_text(text + "\n")
    slow = read_ratings(tmp_path / "u.data", "\t", (4,))
    assert fast.equals(slow) and fast.index[0] == 1 and fast.attrs["width"] == slow.attrs["width"] == 4


def test_user_cold_is_refused_on_sets_without_user_attributes():
    for name in ("ml-10m", "ml-20m", "ml-25m", "synthetic"):
        with pytest.raises(ConfigError, match=f"key 'split' = 'user_cold' .* {name} has none"):
            TrainConfig.from_dict({"dataset": name, "split": "user_cold"})
        assert TrainConfig.from_dict({"dataset": name, "split": "item_cold"}).user_fields == ("anonymous",)
