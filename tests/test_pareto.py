import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysearch import load_model
from raysearch.config import TrainConfig
from raysearch.data.protocols import eval_tasks
from raysearch.data.split_files import read_split
from raysearch.errors import DataError
from raysearch.evaluation.scoring import by_part, evaluate
from raysearch.export import export_model
from raysearch.search.pareto import non_dominated, write_front
from raysearch.search.space import Objective, load_space
from raysearch.search.storage import resolve
from raysearch.search.tuning import search
from raysearch.testing.faults import SMOKE
from raysearch.train.fusion_gcn import model_scorer

NAN = float("nan")


@pytest.mark.parametrize("values, maximize, front", [
    # (1, 1) is beaten by (2, 2); (3, 0) and (0, 3) trade off against (2, 2)
    ([[1, 1], [2, 2], [3, 0], [0, 3]], [True, True], [False, True, True, True]),
    # ties: (2, 1) and (2, 2) tie on the first objective, (2, 2) is better on the second
    ([[2, 1], [2, 2], [1, 3]], [True, True], [False, True, True]),
    # duplicates of a front point are both kept; a duplicate of a beaten point is beaten too
    ([[2, 2], [2, 2], [1, 1], [1, 1]], [True, True], [True, True, False, False]),
    # three objectives: (1, 1, 1) is beaten only by (1, 1, 2); the others trade off
    ([[1, 1, 1], [1, 1, 2], [2, 0, 0], [0, 2, 0]], [True, True, True], [False, True, True, True]),
    # a minimised second objective: (0.2, 0.3) and (0.3, 0.4) trade off; (0.2, 0.5) loses to (0.2, 0.3)
    ([[0.2, 0.3], [0.3, 0.4], [0.2, 0.5]], [True, False], [True, True, False]),
    # a trial without a value is never on the front, nor does it beat anything
    ([[NAN, 9], [1, 1]], [True, True], [False, True]),
    # one objective: the best (and its ties) only
    ([[0.1], [0.3], [0.3]], [True], [False, True, True]),
])
def test_front_matches_hand_derived_cases(values, maximize, front):
    assert non_dominated(np.array(values, dtype=float), maximize).tolist() == front


def test_values_must_have_one_column_per_objective():
    with pytest.raises(ValueError, match=r"expected values of shape \[n, 2\], got \[3\]"):
        non_dominated(np.array([1.0, 2.0, 3.0]), [True, True])


@pytest.fixture(scope="module")
def front_search(ray_address, ml100k, tmp_path_factory):
    """The smoke search on the mixed split with warm and item-cold NDCG@10 as objectives, ASHA on their mean."""
    smoke = load_space(SMOKE)
    space = dataclasses.replace(
        smoke, config=smoke.config.updated({"split": "mixed"}),
        objectives=(Objective("warm_ndcg@10"), Objective("item_cold_ndcg@10")))
    return space, Path(search(space, ml100k, tmp_path_factory.mktemp("storage"), "front").path)


@pytest.mark.ray
@pytest.mark.slow
def test_a_multi_objective_search_writes_its_whole_front(front_search):
    space, experiment = front_search
    keys = [o.key for o in space.objectives]
    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    points = pd.read_csv(experiment / "pareto.csv", dtype={"trial_id": str})
    finished = trials[trials["error"].isna() & trials["checkpoint"].notna()].dropna(subset=keys)
    expected = finished[non_dominated(finished[keys].to_numpy(), [True, True])]
    assert sorted(points["trial_id"]) == sorted(expected["trial_id"]) and len(points) >= 1
    assert non_dominated(points[keys].to_numpy(), [True, True]).all()  # mutually non-dominated
    for trial in points["trial_id"]:
        config = TrainConfig.from_yaml(experiment / "front_configs" / f"{trial}.yaml")
        assert config.learning_rate == pytest.approx(trials.set_index("trial_id").loc[trial, "param_learning_rate"])
    assert not (experiment / "best_config.yaml").exists() and (experiment / "best_checkpoint").is_dir()
    for name in ("pareto.png", "optimization_history_warm_ndcg@10.png", "validation_curves.png"):
        assert (experiment / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    summary = (experiment / "summary.md").read_text()
    # a multi-objective study holds values for finished trials only (Optuna keeps none for pruned ones), so the
    # importances need 2 trials ASHA let finish: drawn then, else summary.md says why
    completed = int(((trials["stopped_by"] != "asha") & trials["error"].isna()).sum())
    importances = experiment / "param_importances_item_cold_ndcg@10.png"
    assert importances.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") if completed >= 2 else \
        f"{importances.name} not drawn: needs 2 trials with an objective" in summary
    assert "## Pareto front" in summary


@pytest.mark.ray
@pytest.mark.slow
def test_an_exported_front_point_reproduces_its_objectives(front_search, ml100k, tmp_path):
    space, experiment = front_search
    point = pd.read_csv(experiment / "pareto.csv", dtype={"trial_id": str}).iloc[-1]
    export_model(experiment, tmp_path / "model", trial=point["trial_id"])
    recommender = load_model(tmp_path / "model")
    split = read_split(experiment / "split.json", ml100k)
    tasks = eval_tasks(split, "valid", ml100k.num_items)
    scorer = model_scorer(recommender.model, recommender.inputs)
    metrics = by_part(tasks, lambda task: evaluate(scorer, task, ml100k.num_items, recommender.config.topk, 512))
    for objective in space.objectives:
        assert metrics[objective.metric] == pytest.approx(point[objective.key], abs=1e-4)
    with pytest.raises(DataError, match="no trial 'nope'"):
        export_model(experiment, tmp_path / "other", trial="nope")


def test_front_files_list_the_non_dominated_finished_trials(tmp_path):
    space = dataclasses.replace(load_space(SMOKE), objectives=(Objective("ndcg@10"), Objective("recall@10")))
    table = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d", "e"], "error": ["", "", "", "boom", ""],
        "best_valid_ndcg@10": [0.3, 0.2, 0.1, 0.9, 0.35], "best_valid_recall@10": [0.1, 0.3, 0.05, 0.9, 0.05],
        "checkpoint": ["a/c", "b/c", "c/c", "", ""], "stopped_by": ["patience"] * 5, "epochs_run": [3] * 5,
        "best_epoch": [2] * 5, **{f"param_{p.key}": [1, 1, 1, 1, 1] for p in space.params}})
    configs = {t: space.config for t in "abc"}
    section = write_front(space, resolve(str(tmp_path)), table, configs)
    points = pd.read_csv(tmp_path / "pareto.csv")
    assert points["trial_id"].tolist() == ["a", "b"]  # d errored, e kept no checkpoint, c is beaten by a
    assert sorted(p.name for p in (tmp_path / "front_configs").iterdir()) == ["a.yaml", "b.yaml"]
    assert (tmp_path / "front_configs" / "a.yaml").read_text().startswith(
        "# Pareto-front trial a: ndcg@10 = 0.300000, recall@10 = 0.100000 at epoch 2\n")
    assert (tmp_path / "pareto.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "## Pareto front (2 of 5 trials)" in section and "--trial <trial id>" in section
