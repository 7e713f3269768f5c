"""The Ray search end to end, on one local Ray shared by the test run (2 logical CPUs)."""

import dataclasses
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from ray import tune
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from raysearch import load_model
from raysearch.config import TrainConfig
from raysearch.data.protocols import eval_task
from raysearch.data.split_files import read_split
from raysearch.errors import RaysearchError
from raysearch.evaluation.scoring import evaluate
from raysearch.export import export_model
from raysearch.search.plots import CURVES, HISTORY, IMPORTANCES, PARALLEL
from raysearch.search.space import load_space
from raysearch.search.tuning import search
from raysearch.testing.faults import SMOKE, result_lines
from raysearch.train.fusion_gcn import model_scorer

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SMOKE_EPOCHS = 3  # smoke.yaml's epochs


@pytest.fixture(scope="module")
def smoke(ray_address, ml100k, tmp_path_factory):
    """A 4-trial smoke search, one worker per trial, two trials at once (search_spaces/smoke.yaml)."""
    storage = tmp_path_factory.mktemp("storage")
    return Path(search(load_space(SMOKE), ml100k, storage, "smoke").path)


def test_every_trial_finishes_and_asha_stops_some(smoke):
    trials = pd.read_csv(smoke / "trials.csv")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "TERMINATED").all()
    assert (trials["stopped_by"] == "asha").any()
    assert ((trials["epochs_run"] >= 1) & (trials["epochs_run"] <= 3)).all()
    best = trials.loc[trials["best_value"].idxmax()]
    header = (smoke / "best_config.yaml").read_text().splitlines()[0]
    assert best["trial_id"] in header
    config = TrainConfig.from_yaml(smoke / "best_config.yaml")
    assert config.learning_rate == pytest.approx(best["param_learning_rate"])
    assert (smoke / "summary.md").read_text().count(str(best["trial_id"])) == 1
    for name in (HISTORY, IMPORTANCES, PARALLEL, CURVES):  # every plot drawn, a valid PNG, linked from the summary
        assert (smoke / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"[{name}]({name})" in (smoke / "summary.md").read_text()
    study = optuna.load_study(study_name="smoke", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(smoke / "optuna.journal"))))
    assert len(study.trials) == 4
    recorded = sorted((t.state.name, round(t.value, 9)) for t in study.trials)
    expected = sorted(("PRUNED" if row.stopped_by == "asha" else "COMPLETE", round(row.best_value, 9))
                      for row in trials.itertuples())
    assert recorded == expected  # ASHA-stopped trials pruned; every trial's value its best, not its last


def test_epochs_report_steps_and_timings_and_checkpoint_only_improved_and_last_epochs(smoke):
    for trial in sorted(smoke.glob("run_trial_*")):
        lines = result_lines(trial / "result.json")
        steps = lines[0]["train_steps"]
        assert steps > 0 and [line["train_steps"] for line in lines] == [steps * line["epoch"] for line in lines]
        assert all(line["epoch_seconds"] > 0 and line["eval_seconds"] > 0 for line in lines)
        improved = {line["epoch"] for line in lines if line["best_epoch"] == line["epoch"]}
        kept = [torch.load(c / "checkpoint.pt", weights_only=True)["epoch"] for c in trial.glob("checkpoint_*")]
        assert kept and set(kept) <= improved | {SMOKE_EPOCHS}  # the last epoch, for --resume


def test_exported_model_reproduces_the_best_validation_metric(smoke, ml100k, tmp_path):
    trials = pd.read_csv(smoke / "trials.csv")
    out = tmp_path / "model"
    export_model(smoke, out)
    checkpoint = torch.load(out / "model.pt", weights_only=True)
    assert checkpoint["optimizer"] is None and checkpoint["metrics"]["best_value"] == pytest.approx(trials["best_value"].max())
    recommender = load_model(out)
    split = read_split(smoke / "split.json", ml100k)  # the split every trial trained on
    metrics = evaluate(model_scorer(recommender.model, recommender.inputs), eval_task(split, "valid"),
                       ml100k.num_items, recommender.config.topk, 512)
    assert metrics[recommender.config.metric] == pytest.approx(trials["best_value"].max(), abs=1e-4)
    top = recommender.recommend(1, 10)
    seen = set(ml100k.item_ids[split.train[split.train[:, 0] == 0, 1]])
    assert len(top) == 10 and not seen & {r.item_id for r in top}
    assert len(recommender.recommend_for_attributes({"gender": "F", "age": "25", "occupation": "writer", "zip": "55455"}, 5)) == 5


def test_tensorboard_events_carry_hparams(smoke):
    files = sorted(smoke.glob("run_trial_*/events.out.tfevents.*"))
    assert len(files) == 4
    for file in files:
        events = EventAccumulator(str(file))
        events.Reload()
        assert "ray/tune/valid_ndcg_10" in events.Tags()["scalars"]
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_a_second_search_with_the_same_name_is_refused(smoke, ml100k):
    with pytest.raises(RaysearchError, match="an experiment with this name exists"):
        search(load_space(SMOKE), ml100k, smoke.parent, "smoke")


class StopAtSecondEpoch(tune.Stopper):
    """Ends the whole search once any trial has reported its second epoch."""

    def __init__(self) -> None:
        self.reached = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        self.reached = self.reached or result["training_iteration"] >= 2
        return False

    def stop_all(self) -> bool:
        return self.reached


def test_a_search_can_start_from_its_config_and_a_stop_criterion_ends_it(ray_address, ml100k, tmp_path):
    smoke = load_space(SMOKE)
    space = dataclasses.replace(smoke, config=smoke.config.updated({"num_layers": 2}),
                                experiment=dataclasses.replace(smoke.experiment, evaluate_config=True))
    experiment = Path(search(space, ml100k, tmp_path, "stopped", stop=StopAtSecondEpoch()).path)
    trials = pd.read_csv(experiment / "trials.csv")
    assert len(trials) < 4 and trials["epochs_run"].max() == 2  # smoke.yaml: 4 trials of 3 epochs
    assert (experiment / "best_checkpoint").is_dir() and (experiment / "best_config.yaml").is_file()
    first = space.first_trials()[0]
    assert ((trials["param_num_layers"] == 2) & (trials["param_learning_rate"] == first["learning_rate"])
            & (trials["param_temperature"] == first["temperature"])).sum() == 1
