"""Weight inheritance copies exactly the layers a child shares with its parent."""

from __future__ import annotations

import pytest
import torch

from nni_hwnas.evaluation.inheritance import inherit_weights
from search_spaces.layers import build_network
from search_spaces.registry import load_preset, make_definition


def test_child_inherits_shared_blocks_and_keeps_changed_ones_fresh():
    definition = make_definition(*load_preset("staged_net_s3"), (1, 8, 8), 10)
    parent_sample = {label: values[0] for label, values in definition.mutable_labels().items()}
    parent_sample.update({"s0_b0_op": "conv3x3", "s0_b1_op": "dw3x3", "s1_b0_width": 1.0, "s1_b1_op": "conv1x1"})
    child_sample = {**parent_sample, "s0_b1_op": "dw5x5"}  # one block's kernel changes
    torch.manual_seed(0)
    parent = build_network(definition.describe(parent_sample))
    torch.manual_seed(1)
    child = build_network(definition.describe(child_sample))
    before = {k: v.clone() for k, v in child.state_dict().items()}
    report = inherit_weights(child, parent.state_dict())
    state, parent_state = child.state_dict(), parent.state_dict()
    for name, tensor in state.items():
        same = name in parent_state and parent_state[name].shape == tensor.shape
        assert torch.equal(tensor, parent_state[name] if same else before[name]), name
    changed = [n for n in state if n.startswith("2.") and parent_state.get(n, torch.empty(0)).shape != state[n].shape]
    assert changed == ["2.0.body.0.weight"]  # the depthwise 5x5 kernel (a residual block); BN and pointwise kept
    assert report.fresh == state[changed[0]].numel() and 0.9 < report.fraction < 1.0


@pytest.mark.parametrize("model_pool", [0, 200])  # tournament children; model-based proposals (the default)
def test_evolved_proposals_name_their_parent_and_random_ones_none(model_pool):
    from strategies.hw_evolution import HwEvolution

    definition = make_definition(*load_preset("staged_net_s3"), (1, 8, 8), 10)
    evo = HwEvolution(definition.mutable_labels(), identity=definition.arch_id, canonical=definition.canonical,
                      population_size=4, sample_size=2, initial_random=2, seed=0, model_pool=model_pool)
    parents, named = [], []
    for i in range(6):
        sample = evo.ask()
        parent = evo.parent_of(sample)
        parents.append(parent)
        told = {r["id"] for r in evo.history}
        if i < 2 or (model_pool and parent is None):  # random starts; a model's random pool candidate
            assert parent is None
        else:
            assert parent in told  # a member of the population (or front), already told
            named.append(parent)
        evo.tell(sample, {"default": 0.1 * i, "latency_ms": 1.0 + i})
    assert [r["parent"] for r in evo.history] == parents and named  # recorded as proposed; some bred


def test_inherit_weights_is_refused_without_training_or_hw_evolution():
    import pytest

    from nni_hwnas.errors import UserError
    from nni_hwnas.experiment.config import parse_config

    with pytest.raises(UserError, match="needs `strategy.name: hw_evolution`"):
        parse_config({"strategy": {"name": "Random"}, "evaluator": {"inherit_weights": True}})
    with pytest.raises(UserError, match="needs `evaluator.kind: train`"):
        parse_config({"strategy": {"name": "hw_evolution"}, "evaluator": {"kind": "proxy", "inherit_weights": True}})




def test_real_nni_experiment_children_start_from_their_parents_weights(tmp_path, nni_home):
    """Through NasExperiment: every trial saves its weights under the experiment's folder, and each
    evolved child's trial process receives its parent's id and starts from the parent's weights."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import REPO, free_port, write_staged_net_search

    config = write_staged_net_search(tmp_path / "inherit.yaml", "inherit-e2e", 3, tmp_path / "exps",
                                     evaluator={"inherit_weights": True})
    script = Path(sys.executable).with_name("nni-hwnas")
    result = subprocess.run([str(script), "search", "--config", str(config), "--port", str(free_port()),
                             "--output", str(tmp_path / "out"), "--no-dashboard"], cwd=REPO, capture_output=True,
                            text=True, timeout=900)  # 4 trials one at a time; slow on a loaded machine
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    history = json.loads((tmp_path / "out" / "strategy_history.json").read_text())["history"]
    trials = json.loads((tmp_path / "out" / "trials.json").read_text())
    assert len(history) == len(trials) == 4 and all(t["status"] == "SUCCEEDED" for t in trials)
    definition = make_definition(*load_preset("staged_net_s3"), (1, 8, 8), 10)
    labels = definition.mutable_labels()
    fraction = {definition.arch_id({k: t[f"arch.{k}"] for k in labels}): t["inherited_fraction"] for t in trials}
    saved = {p.stem for p in (tmp_path / "exps").glob("*/weights/*.pt")}
    assert saved == {r["id"] for r in history}  # every trial's trained weights, by architecture id
    children = [r for r in history if r["parent"] is not None]
    assert len(children) == 2 and all(r["parent"] in saved for r in children)
    assert all(fraction[r["id"]] == 0.0 for r in history if r["parent"] is None)
    assert all(0.0 < fraction[r["id"]] < 1.0 for r in children)  # the shared layers came from the parent
    # What each child's trial inherited is what its parent's saved weights give that architecture.
    for child in children:
        parent_file = next((tmp_path / "exps").glob(f"*/weights/{child['parent']}.pt"))
        network = build_network(definition.describe(child["sample"]))
        expected = inherit_weights(network, torch.load(parent_file, weights_only=True)).fraction
        assert abs(fraction[child["id"]] - expected) < 1e-12
