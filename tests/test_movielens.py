from pathlib import Path

import numpy as np
import pytest

from raysearch.config import TrainConfig
from raysearch.data.movielens import load_dataset, load_for
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
