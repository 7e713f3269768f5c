"""The cluster configs in clusters/: launcher YAMLs validated offline by Ray's own code, the KubeRay RayJob
checked for structure, and every command their headers give checked against the repository and the CLI.

Validation is what `ray up` runs before it touches a cloud: ``prepare_config`` (fills in the provider's
defaults.yaml, merges setup commands, sets node-type worker bounds; no network) then ``validate_config``
(Ray's ray-schema.json plus its semantic rules). `ray up` would next call the provider's
``bootstrap_config`` (IAM roles, subnets, images), which needs the cloud account, so it is not run here.
"""

import copy
import shlex
from pathlib import Path

import pytest
import yaml
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config

from raysearch.cli import build_parser
from raysearch.search.space import load_space

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = ROOT / "clusters"
LAUNCHER_CONFIGS = ("aws.yaml", "gcp.yaml", "local.yaml")
STORAGE_SCHEMES = {"aws.yaml": "s3://", "gcp.yaml": "gs://", "local.yaml": "/"}


def header_commands(path: Path) -> list[str]:
    """The shell commands listed in a file's header comment (backslash continuations joined)."""
    lines = [line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    return [line for line in text.splitlines() if line.startswith(("ray ", "kubectl "))]


def check_tune_arguments(args: list[str]) -> None:
    """`raysearch tune` accepts the arguments and the search space they name is valid."""
    parsed = build_parser().parse_args(["tune", *args])
    assert parsed.space is not None
    load_space(ROOT / "search_spaces" / parsed.space.name)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_rays_own_validation(name):
    config = yaml.safe_load((CLUSTERS / name).read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["cluster_name"].startswith("raysearch")


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_cloud_configs_have_a_cpu_head_and_autoscaled_one_gpu_workers(name):
    config = prepare_config(yaml.safe_load((CLUSTERS / name).read_text()))
    head, worker = config["available_node_types"]["head"], config["available_node_types"]["gpu_worker"]
    assert config["head_node_type"] == "head" and head["max_workers"] == 0
    assert (worker["min_workers"], worker["max_workers"], config["max_workers"]) == (0, 4, 4)
    node = worker["node_config"]
    gpus = node.get("guestAccelerators", [{"acceleratorCount": 1}])[0]["acceleratorCount"]
    assert gpus == 1 and ("InstanceType" in node or "machineType" in node)


def test_a_broken_launcher_config_is_rejected():
    config = yaml.safe_load((CLUSTERS / "aws.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["max_wrokers"] = 4
    with pytest.raises(ValidationError, match="max_wrokers"):
        validate_config(prepare_config(config))
    config = yaml.safe_load((CLUSTERS / "gcp.yaml").read_text())
    config["head_node_type"] = "missing"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(config))


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_header_commands_and_mounts_match_the_repository(name):
    config = yaml.safe_load((CLUSTERS / name).read_text())
    commands = header_commands(CLUSTERS / name)
    for verb in ("up", "submit", "down"):
        assert any(c.startswith(f"ray {verb} clusters/{name}") for c in commands), verb
    for command in (c for c in commands if c.startswith("ray submit")):
        words = shlex.split(command)
        script, separator, *args = words[3:]
        assert (ROOT / script).is_file() and separator == "--"
        check_tune_arguments(args)
        assert words[words.index("--storage") + 1].startswith(STORAGE_SCHEMES[name])
    for source in config["file_mounts"].values():
        assert (ROOT / source).exists(), source
    exports = [c for c in config["setup_commands"] if "RAYSEARCH_STORAGE=" in c]
    assert len(exports) == 1 and f"RAYSEARCH_STORAGE={STORAGE_SCHEMES[name]}" in exports[0]
    assert any("pip install" in c and "raysearch" in c for c in config["setup_commands"])
    text = (CLUSTERS / name).read_text()
    assert text.count("CHANGE") >= 3 and "Change before use" in text.split("\n\n")[0]


def test_kuberay_rayjob_runs_the_same_search():
    path = CLUSTERS / "kuberay-rayjob.yaml"
    (job,) = yaml.safe_load_all(path.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    words = shlex.split(spec["entrypoint"])
    assert words[:4] == ["python", "-m", "raysearch", "tune"] and words[words.index("--address") + 1] == "auto"
    check_tune_arguments(words[4:])
    cluster = spec["rayClusterSpec"]
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    space = Path(words[words.index("--space") + 1])
    assert str(space.parent) in [m["mountPath"] for m in head["volumeMounts"]]
    (workers,) = cluster["workerGroupSpecs"]
    (worker,) = workers["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert (workers["minReplicas"], workers["maxReplicas"]) == (0, 4)
    for container in (head, worker):
        assert [e["name"] for e in container["env"]] == ["RAYSEARCH_STORAGE"]
        assert container["env"][0]["value"].startswith(("s3://", "gs://"))
        assert container["envFrom"][0]["secretRef"]["name"] == "raysearch-s3"
    assert any(c.startswith("kubectl apply -f clusters/kuberay-rayjob.yaml") for c in header_commands(path))
