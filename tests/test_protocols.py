import numpy as np
import pytest

from raysearch.data.protocols import eval_task, eval_tasks, make_split


def _keys(pairs):
    return set(map(tuple, pairs.tolist()))


@pytest.mark.parametrize("protocol", ["warm", "item_cold", "user_cold"])
def test_parts_partition_the_interactions(ml100k, protocol):
    split = make_split(ml100k, protocol, seed=7)
    parts = [_keys(split.train), _keys(split.valid), _keys(split.test)]
    assert sum(map(len, parts)) == len(ml100k.interactions)
    assert set.union(*parts) == _keys(ml100k.interactions)
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])


@pytest.mark.parametrize("protocol, column, count", [("item_cold", 1, 1682), ("user_cold", 0, 943)])
def test_cold_entities_have_no_training_edge(ml100k, protocol, column, count):
    split = make_split(ml100k, protocol, seed=7)
    cold = split.cold_items if column == 1 else split.cold_users
    assert len(cold["valid"]) + len(cold["test"]) == round(0.2 * count)
    assert not set(cold["valid"]) & set(cold["test"])
    all_cold = np.concatenate([cold["valid"], cold["test"]])
    assert not np.isin(split.train[:, column], all_cold).any()
    for part in ("valid", "test"):
        assert np.isin(split.part(part)[:, column], cold[part]).all()


def test_warm_split_is_80_10_10_per_user(ml100k):
    split = make_split(ml100k, "warm", seed=7)
    counts = np.bincount(ml100k.interactions[:, 0])
    assert (np.bincount(split.valid[:, 0], minlength=943) == counts // 10).all()
    assert (np.bincount(split.test[:, 0], minlength=943) == counts // 10).all()
    assert len(split.train) == 100000 - 2 * (counts // 10).sum()


def test_same_seed_same_split_other_seed_differs(ml100k):
    a, b, c = (make_split(ml100k, "item_cold", s) for s in (1, 1, 2))
    assert np.array_equal(a.test, b.test) and np.array_equal(a.cold_items["test"], b.cold_items["test"])
    assert not np.array_equal(a.cold_items["test"], c.cold_items["test"])


def test_eval_tasks_rank_the_right_candidates(ml100k):
    warm = make_split(ml100k, "warm", seed=7)
    test = eval_task(warm, "test")
    assert test.candidates is None and len(test.excluded) == len(warm.train) + len(warm.valid)
    item_cold = make_split(ml100k, "item_cold", seed=7)
    task = eval_task(item_cold, "valid")
    assert np.array_equal(task.candidates, item_cold.cold_items["valid"]) and len(task.excluded) == 0
    user_cold = make_split(ml100k, "user_cold", seed=7)
    task = eval_task(user_cold, "test")
    assert set(task.users) <= set(user_cold.cold_users["test"]) and task.candidates is None



def test_mixed_parts_are_disjoint_and_cold_entities_never_train(ml100k):
    split = make_split(ml100k, "mixed", 7, cold_user_share=0.1)
    parts = [_keys(split.train), _keys(split.valid), _keys(split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    items = np.concatenate(list(split.cold_items.values()))
    users = np.concatenate(list(split.cold_users.values()))
    assert len(items) == round(0.2 * 1682) and len(users) == round(0.1 * 943)
    assert not set(split.cold_items["valid"]) & set(split.cold_items["test"])
    assert not np.isin(split.train[:, 1], items).any() and not np.isin(split.train[:, 0], users).any()
    both = np.isin(ml100k.interactions[:, 0], users) & np.isin(ml100k.interactions[:, 1], items)
    assert sum(map(len, parts)) == len(ml100k.interactions) - both.sum()  # a cold user's cold items are left out
    assert set.union(*parts) == _keys(ml100k.interactions[~both])
    for part, other in (("valid", "test"), ("test", "valid")):  # a cold entity's pairs are all in its own part
        assert not np.isin(split.part(part)[:, 1], split.cold_items[other]).any()
        assert not np.isin(split.part(part)[:, 0], split.cold_users[other]).any()


def test_mixed_sub_parts_are_ranked_as_their_own_protocols(ml100k):
    split = make_split(ml100k, "mixed", 7, cold_user_share=0.1)
    cold_items = np.concatenate(list(split.cold_items.values()))
    cold_users = np.concatenate(list(split.cold_users.values()))
    tasks = eval_tasks(split, "test", ml100k.num_items)
    assert list(tasks) == ["warm_", "item_cold_", "user_cold_"]
    warm, item_cold, user_cold = tasks.values()
    assert np.array_equal(warm.candidates, np.setdiff1d(np.arange(ml100k.num_items), cold_items))
    assert len(warm.excluded) == len(split.train) + len(split.valid)  # what the user had before test
    assert not np.isin(warm.positives[:, 1], cold_items).any()
    assert not np.isin(warm.users, cold_users).any()
    assert np.array_equal(item_cold.candidates, split.cold_items["test"]) and len(item_cold.excluded) == 0
    assert np.isin(item_cold.positives[:, 1], split.cold_items["test"]).all()
    assert np.array_equal(user_cold.candidates, warm.candidates) and len(user_cold.excluded) == 0
    assert np.isin(user_cold.users, split.cold_users["test"]).all()
    assert sum(len(t.positives) for t in tasks.values()) == len(split.test)  # every test pair in one sub-part
    assert list(eval_tasks(make_split(ml100k, "mixed", 7), "valid", ml100k.num_items)) == ["warm_", "item_cold_"]
    assert list(eval_tasks(make_split(ml100k, "warm", 7), "valid", ml100k.num_items)) == [""]
