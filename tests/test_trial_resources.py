"""What a trial asks Ray for, how many run at once, and the spaces Ray could never grant (no Ray started)."""

import dataclasses
from pathlib import Path

import pytest

from raysearch.config import Scaling, TrainConfig
from raysearch.errors import RaysearchError
from raysearch.search.space import Experiment, load_space
from raysearch.search.tuning import check_grantable, concurrency, ended_by, trial_resources

DEFAULT = Path(__file__).resolve().parents[1] / "search_spaces" / "default.yaml"


def space_with(**resources):
    return load_space(DEFAULT).with_resources(**resources)


@pytest.mark.parametrize("resources, asked, cpus, at_once", [
    ({}, {"CPU": 1.0, "GPU": 0.0}, 2, 2),  # one worker trains in the trial itself
    ({"cpus_per_worker": 2.0}, {"CPU": 2.0, "GPU": 0.0}, 2, 1),
    ({"use_gpu": True}, {"CPU": 1.0, "GPU": 1.0}, 8, 8),
    ({"workers_per_trial": 2, "cpus_per_worker": 0.5}, {"CPU": 0.01}, 2, 1),  # a driver; Train holds the workers
    ({"workers_per_trial": 2, "cpus_per_worker": 1.0}, {"CPU": 0.01}, 8, 3),
])
def test_concurrency_is_the_cpus_over_the_cpus_of_a_trial(resources, asked, cpus, at_once):
    space = space_with(**resources)
    assert trial_resources(space.resources) == asked
    assert concurrency(space, cpus) == at_once


def test_a_space_setting_max_concurrent_trials_keeps_it():
    space = dataclasses.replace(space_with(), experiment=Experiment(max_concurrent_trials=1))
    assert concurrency(space, 16) == 1


@pytest.mark.parametrize("resources, available, fragment", [
    ({"cpus_per_worker": 3.0}, {"CPU": 2.0}, "resources.workers_per_trial x resources.cpus_per_worker = 1 x 3 needs "
                                             "3 CPUs per trial, but Ray has 2 CPUs"),
    ({"workers_per_trial": 2, "cpus_per_worker": 1.0}, {"CPU": 2.0},
     "resources.workers_per_trial x resources.cpus_per_worker + 0.01 for the trial's driver = 2 x 1 needs 2.01 CPUs "
     "per trial, but Ray has 2 CPUs"),
    ({"use_gpu": True}, {"CPU": 2.0}, "resources.use_gpu with resources.workers_per_trial = 1 needs 1 GPUs per "
                                      "trial, but Ray has 0 GPUs"),
])
def test_resources_ray_can_never_grant_fail_at_once(resources, available, fragment):
    with pytest.raises(RaysearchError) as err:
        check_grantable(space_with(**resources), available)
    assert str(err.value).startswith(str(DEFAULT)) and fragment in str(err.value)


def test_resources_that_fit_pass():
    check_grantable(space_with(cpus_per_worker=2.0), {"CPU": 2.0})
    check_grantable(space_with(workers_per_trial=2, cpus_per_worker=0.5), {"CPU": 2.0})


@pytest.mark.parametrize("epochs, best_epoch, ended", [(10, 4, "completed"), (7, 2, "patience"), (3, 3, "asha")])
def test_how_a_trial_ended(epochs, best_epoch, ended):
    assert ended_by(epochs, best_epoch, TrainConfig(epochs=10, patience=5)) == ended
