"""The training recipe: warm-up and schedules, gradient clipping, label smoothing, bf16 autocast."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from nni_hwnas.data.datasets import load_dataset
from nni_hwnas.errors import UserError
from nni_hwnas.evaluation import training
from nni_hwnas.evaluation.training import TrainSettings, cpu_supports_bf16, lr_factor, train_model
from nni_hwnas.hardware.timing import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads can run 20x slower."""
    with torch_threads(1):
        yield


def test_lr_factor_warms_up_then_follows_the_schedule():
    assert [lr_factor("cosine", s, 100, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor("cosine", 4, 100, 4) == 1.0
    assert math.isclose(lr_factor("cosine", 52, 100, 4), 0.5)  # half-way through the 96 steps after warm-up
    assert lr_factor("cosine", 100, 100, 4) == pytest.approx(0.0)
    assert [lr_factor("step", s, 100) for s in (0, 49, 50, 75)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    assert lr_factor("constant", 7, 10, 0) == 1.0
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_factor("linear", 0, 10)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _one_step_change(**settings) -> float:
    """Norm of the parameter change after one full-batch SGD step (no momentum, no decay)."""
    data = load_dataset("digits", seed=0)
    model = _mlp()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    n = len(data.train_y)
    result = train_model(model, data, TrainSettings(epochs=1, batch_size=n, momentum=0.0, weight_decay=0.0,
                                                    augment=False, lr_schedule="constant", **settings), seed=0)
    assert result.images_per_second > 0
    return float((torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm())


def test_gradient_clipping_and_warmup_bound_the_first_step():
    """A step is at most lr x clip norm (x the warm-up factor): a huge first gradient cannot wreck the net."""
    plain = _one_step_change(learning_rate=10.0)
    clipped = _one_step_change(learning_rate=10.0, grad_clip_norm=0.5)
    warm = _one_step_change(learning_rate=10.0, grad_clip_norm=0.5, warmup_epochs=4.0)  # first step at 1/4
    assert clipped == pytest.approx(5.0, rel=1e-4) and plain > 5.0
    assert warm == pytest.approx(1.25, rel=1e-4)


def test_label_smoothing_reaches_the_loss():
    data = load_dataset("digits", seed=0)
    a = train_model(_mlp(), data, TrainSettings(epochs=1), seed=0)
    b = train_model(_mlp(), data, TrainSettings(epochs=1, label_smoothing=0.2), seed=0)
    assert b.train_loss[0] > a.train_loss[0]  # smoothed targets keep the loss above the plain one


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no AVX512-BF16 or AMX-BF16")
def test_bf16_autocast_trains_and_reports():
    data = load_dataset("digits", seed=0)
    fp32 = train_model(_mlp(), data, TrainSettings(epochs=3), seed=0)
    bf16 = train_model(_mlp(), data, TrainSettings(epochs=3, precision="bf16"), seed=0)
    assert bf16.images_per_second > 0 and bf16.final_accuracy > 0.5  # chance is 0.1
    assert abs(bf16.final_accuracy - fp32.final_accuracy) < 0.05
    assert bf16.train_loss != fp32.train_loss  # it really ran in another precision


def test_bf16_refused_with_one_line_where_the_cpu_lacks_it(monkeypatch):
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: False)
    with pytest.raises(UserError, match="needs a CPU with AVX512-BF16 or AMX-BF16 .* use precision: fp32"):
        train_model(_mlp(), load_dataset("digits", seed=0), TrainSettings(precision="bf16"), seed=0)


def test_kaiming_init_is_seeded_and_keeps_relu_signal():
    from nni_hwnas.evaluation.training import kaiming_init

    a, b = nn.Conv2d(32, 64, 5), nn.Conv2d(32, 64, 5)
    kaiming_init(a, seed=3)
    kaiming_init(b, seed=3)
    assert torch.equal(a.weight, b.weight) and not a.bias.any()
    assert float(a.weight.std()) == pytest.approx(math.sqrt(2.0 / (32 * 25)), rel=0.05)  # torch default: ~1/3 of it
    with pytest.raises(UserError, match="weight_init must be default or kaiming"):
        train_model(_mlp(), load_dataset("digits", seed=0), TrainSettings(weight_init="xavier"), seed=0)


def test_conv_training_returns_the_model_in_the_default_layout():
    """Training runs channels-last (faster convolutions); the trained model comes back contiguous,
    so its latency is timed in the layout the table's rows use."""
    data = load_dataset("digits", seed=0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10))
    result = train_model(model, data, TrainSettings(epochs=1), seed=0)
    assert result.final_accuracy > 0.2  # chance is 0.1
    assert model[0].weight.is_contiguous()


@pytest.mark.parametrize("momentum, weight_decay, schedule", [(0.9, 5e-4, "cosine"), (0.0, 0.0, "step")])
def test_written_out_sgd_steps_exactly_as_torchs_sgd_under_its_lambda_schedule(momentum, weight_decay, schedule):
    """The trial's optimizer replaces torch.optim.SGD + LambdaLR (2 CPU-s of imports per trial), not their numbers."""
    from nni_hwnas.evaluation.sgd import Sgd

    torch.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
                         nn.Linear(3, 3))
    theirs, initial = copy.deepcopy(ours), ours[0].weight.detach().clone()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    steps, lr = 12, 0.05
    reference = torch.optim.SGD(theirs.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                                nesterov=momentum > 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(reference, lambda step: lr_factor(schedule, step, steps, 2))
    optimizer = Sgd(ours.parameters(), momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    for step in range(steps):
        for model in (ours, theirs):
            head = model if step % 3 else model[:-1]  # every third step the last layer gets no gradient
            model.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(head(x), y).backward()
        optimizer.step(lr * lr_factor(schedule, step, steps, 2))
        reference.step()
        scheduler.step()
    for mine, torchs in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(mine, torchs)
    assert not torch.equal(ours[0].weight, initial)  # it did train


def test_written_out_sgd_refuses_nesterov_without_momentum():
    from nni_hwnas.evaluation.sgd import Sgd

    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0"):
        Sgd(nn.Linear(2, 2).parameters(), nesterov=True)


def test_each_epoch_reports_its_losses_as_the_result_records_them():
    """The per-epoch report carries the validation and training losses MO-ASHA can rank young trials by."""
    from nni_hwnas.evaluation.training import EpochResult, evaluate

    data = load_dataset("digits", seed=0)
    reports: list[EpochResult] = []
    model = _mlp()
    result = train_model(model, data, TrainSettings(epochs=2), seed=0, on_epoch=reports.append)
    assert [r.epoch for r in reports] == [0, 1]
    assert [r.val_accuracy for r in reports] == result.val_accuracy
    assert [r.val_loss for r in reports] == result.val_loss and [r.train_loss for r in reports] == result.train_loss
    assert result.val_loss[1] < result.val_loss[0] < math.log(10)  # better than a uniform guess, and learning
    expected = float(nn.functional.cross_entropy(model.eval()(data.val_x), data.val_y))
    assert evaluate(model, data.val_x, data.val_y, False) == (pytest.approx(result.final_accuracy),
                                                              pytest.approx(expected, rel=1e-5))
    assert reports[-1].val_loss == pytest.approx(expected, rel=1e-5)
