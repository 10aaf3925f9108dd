"""Weight inheritance copies exactly the layers a child shares with its parent."""

from __future__ import annotations

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
