"""The mlp experiment: network conventions, wake losses, protocols run end to end on digits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from neurosleep.errors import SpecError
from neurosleep.experiments.ann_network import LOSSES, MLP, SGD
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.spec.mlp import MLPSpec

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]


TINY = {
    "kind": "mlp",
    "name": "tiny",
    "layers": [64, 64, 10],
    "bias": False,
    "output": "relu",
    "init": "uniform",
    "init_scale": 0.1,
}


def digits_protocol(tmp_path, schedule, *, model=None, data=None, name="p", seed=1) -> dict:
    return {
        "format_version": 1,
        "name": name,
        "seed": seed,
        "model": model or TINY,
        "engine": "torch",
        "device": "cpu",
        "data": {"dataset": "digits", "stream": "split", "scenario": "class"} | (data or {}),
        "record": {"weights": False},
        "schedule": schedule,
        "output": str(tmp_path / f"{name}_seed{seed}.h5"),
    }


WAKE = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.5,
    "batch_size": 32,
    "epochs": 8,
    "loss": "cross_entropy",
}


def sequential(wake=WAKE, extra=()):
    return [
        {"test": {"name": "at_start"}},
        {
            "repeat": {
                "over": "tasks",
                "phases": [{"wake": dict(wake)}, *extra, {"test": {"name": "after{k}"}}],
            }
        },
    ]


def run_dict(write_protocol, content) -> np.ndarray:
    path = write_protocol(content, name=content["name"] + ".yaml")
    result = run(load_protocol(path), overwrite=True, progress=False)
    with open_run(result.path) as r:
        assert r.status == "complete"
        return r.evaluations().metrics["accuracy"]


def test_squared_error_gradient_is_minus_e_without_relu_derivative():
    spec = MLPSpec(**TINY)
    net = MLP(spec, torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.linears[-1].weight[3] = -1.0  # output unit 3 is below zero for every input
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(1))
    y = torch.full((16,), 3)
    z, a = net.forward_pre(x)
    loss, reported = LOSSES.get("squared_error")(z, a, y)
    loss.backward()
    e = torch.nn.functional.one_hot(y, 10).float() - a
    h = torch.relu(x @ net.linears[0].weight.T)
    expected = (-e).T @ h / 16  # the toolbox: d = −e, dW = dᵀ·a / m
    torch.testing.assert_close(net.linears[-1].weight.grad, expected.detach())
    assert net.linears[-1].weight.grad[3].abs().sum() > 0  # a ReLU derivative would zero this row
    assert float(reported) == pytest.approx(float(0.5 * e.detach().pow(2).sum() / 16))


def test_scaled_dropout_multiplies_by_keep_probability_at_test_time():
    spec = MLPSpec(**(TINY | {"dropout": 0.25, "dropout_style": "scaled"}))
    net = MLP(spec, torch.Generator().manual_seed(0))
    x = torch.rand(8, 64)
    hidden = torch.relu(x @ net.linears[0].weight.T)
    net.eval()
    torch.testing.assert_close(net.activations(x)[0], 0.75 * hidden)
    net.train()
    torch.manual_seed(0)
    h_train = torch.relu(net.linears[0](x))
    kept = net.forward_pre(x)  # runs without error in training mode
    assert kept[0].shape == (8, 10)
    inverted = MLP(MLPSpec(**(TINY | {"dropout": 0.25})), torch.Generator().manual_seed(0))
    inverted.eval()
    torch.testing.assert_close(inverted.activations(x)[0], torch.relu(inverted.linears[0](x)))
    assert h_train.shape == hidden.shape


@pytest.mark.parametrize("momentum", [0.5, 0.0])
def test_sgd_is_torch_optim_sgd_bit_for_bit(momentum):
    """The functional SGD gives torch.optim.SGD's weights and momentum buffers exactly over
    steps in which a parameter has no gradient."""
    nets = [torch.nn.Linear(7, 5), torch.nn.Linear(7, 5)]
    nets[1].load_state_dict(nets[0].state_dict())
    start = nets[0].weight.detach().clone()
    ours = SGD(nets[0].parameters(), lr=0.1, momentum=momentum)
    theirs = torch.optim.SGD(nets[1].parameters(), lr=0.1, momentum=momentum)
    x = torch.randn(40, 7, generator=torch.Generator().manual_seed(2))
    for step in range(6):
        for net, opt in zip(nets, (ours, theirs), strict=True):
            opt.zero_grad()
            loss = net(x[step::6]).pow(2).sum()
            loss.backward()
            if step == 2:
                net.bias.grad = None  # a parameter left out of one step
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
        buffer = ours.buffers[0 if a.ndim == 2 else 1]
        if momentum:
            assert torch.equal(buffer, theirs.state[b]["momentum_buffer"])
        else:
            assert buffer is None and theirs.state[b].get("momentum_buffer") is None
    assert not torch.equal(nets[0].weight, start)


@pytest.mark.parametrize("silenced", [700, 1180, 0])
def test_backward_without_silent_units_gives_autograds_gradients(monkeypatch, silenced):
    """With ``silenced`` of 1200 first-layer units made ReLU-silent for the whole batch (as SRA's
    sleeps leave them), the backward that leaves them out of the second layer's input gradient
    and of the first layer's weight gradient (700: ≤ 500 live, both taken; 1180: 20 live, below
    MIN_LIVE; 0: all live) gives the weight gradients of plain autograd through ``F.linear``,
    bit for bit (zeros' signs included)."""
    from neurosleep.experiments import ann_network

    spec = MLPSpec(**{**TINY, "layers": [784, 1200, 1200, 10], "dropout": 0.25,
                      "dropout_style": "scaled", "init_scale": 0.01})  # fmt: skip
    x = torch.rand(100, 784, generator=torch.Generator().manual_seed(4))
    taken = []
    pays = ann_network._pays

    def counted(live, units):
        return pays(live, units) and not taken.append(units)

    monkeypatch.setattr(ann_network, "_pays", counted)

    def gradients(skip: bool) -> list[torch.Tensor]:
        net = MLP(spec, torch.Generator().manual_seed(1))
        with torch.no_grad():
            net.linears[0].weight[:silenced] -= 1.0  # no input reaches threshold
        net.train()
        with monkeypatch.context() as m:
            if not skip:
                m.setattr(ann_network, "_skips_silent", lambda spec, weight: False)
            torch.manual_seed(3)  # the dropout masks
            z, _ = net.forward_pre(x)
        (z * torch.linspace(-1.0, 1.0, 10)).sum().backward()
        return [p.grad for p in net.parameters()]

    ours, plain = gradients(True), gradients(False)
    for a, b in zip(ours, plain, strict=True):
        assert torch.equal(a, b) and torch.equal(a.signbit(), b.signbit())
    threads = torch.get_num_threads()
    exact = ann_network._subsets_exact(100, 784, 1200, torch.float32, threads)
    exact &= ann_network._subsets_exact(100, 1200, 1200, torch.float32, threads)
    # the second layer's input columns (1200 units) and the first layer's weight rows (1200)
    assert taken == ([1200, 1200] if silenced == 700 and exact else [])
    assert ours[0][:silenced].count_nonzero() == 0 and ours[1].abs().sum() > 0


def test_sgd_does_not_import_dynamo():
    code = (
        "import sys, torch\n"
        "from neurosleep.experiments.ann_network import make_optimizer\n"
        "w = torch.nn.Parameter(torch.ones(3))\n"
        "opt = make_optimizer([w], 'sgd', 0.1, 0.5, (0.9, 0.999))\n"
        "w.sum().backward(); opt.step(); opt.zero_grad()\n"
        "print('torch._dynamo' in sys.modules, round(w.tolist()[0], 6))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "0.9"]


def test_finetuning_forgets_joint_learns_and_runs_are_deterministic(write_protocol, tmp_path):
    finetune = digits_protocol(tmp_path, sequential(), name="ft")
    R = run_dict(write_protocol, finetune)
    assert R.shape == (6, 5)
    assert R[1, 0] > 0.95  # task 1 learnt
    assert R[5, :4].max() < 0.1 and R[5, 4] > 0.95  # class-IL: only the last task survives
    again = run_dict(write_protocol, finetune | {"output": str(tmp_path / "again.h5")})
    np.testing.assert_array_equal(R, again)
    joint_schedule = [{"wake": dict(WAKE, epochs=20)}, {"test": {"name": "joint"}}]
    joint = run_dict(write_protocol, digits_protocol(tmp_path, joint_schedule, name="joint"))
    assert joint[-1].mean() > 0.85


def test_task_incremental_masks_the_readout(write_protocol, tmp_path):
    R = run_dict(
        write_protocol,
        digits_protocol(tmp_path, sequential(), name="til", data={"scenario": "task"}),
    )
    assert R[-1].mean() > 0.8  # each task's two-unit head still separates its pair


def test_permuted_domain_incremental(write_protocol, tmp_path):
    data = {"stream": "permuted", "scenario": "domain", "tasks": 3}
    R = run_dict(write_protocol, digits_protocol(tmp_path, sequential(), name="perm", data=data))
    assert R.shape == (4, 3)
    assert np.diag(R[1:]).min() > 0.85 and R[-1, 0] < R[1, 0]


def test_sra_phase_records_spikes_and_weight_change(write_protocol, tmp_path):
    sleep = {
        "sleep": {"kind": "sra", "steps": 400, "window": 4, "beta": [0.5, 0.5], "alpha_scale": 2.0}
    }
    content = digits_protocol(tmp_path, sequential(extra=[sleep]), name="sra")
    path = write_protocol(content, name="sra.yaml")
    result = run(load_protocol(path), overwrite=True, progress=False)
    with open_run(result.path) as r:
        phases = [p for p in r.phases() if p.kind == "sleep"]
        assert len(phases) == 5
        assert phases[0].stop_time - phases[0].start_time == pytest.approx(400.0)  # 400 × 1 ms
        assert "layer1" in r.populations()
        spikes = r.spikes("layer1")
        assert spikes.times.size > 0
        assert spikes.times.min() >= phases[0].start_time
        diag = r.arrays(f"sleep/{phases[0].index}")
        assert diag["weight_change_l1"][0] > 0
        total = sum(int(r.arrays(f"sleep/{p.index}")["spike_count"][0]) for p in phases)
        assert total == r.spike_count("layer1")


def test_sra_thresholds_must_be_positive(write_protocol, tmp_path):
    sleep = {"sleep": {"kind": "sra", "steps": 10, "beta": [0.5, 0.0]}}
    path = write_protocol(digits_protocol(tmp_path, sequential(extra=[sleep])), name="b.yaml")
    with pytest.raises(SpecError, match=r"b\.yaml:\d+: .*sleep\.beta\[1\]: .*greater than 0"):
        load_protocol(path)


def test_model_and_data_must_match(write_protocol, tmp_path):
    bad = digits_protocol(tmp_path, sequential(), name="bad", model=TINY | {"layers": [784, 10]})
    path = write_protocol(bad, name="bad.yaml")
    with pytest.raises(Exception, match="64 inputs"):
        run(load_protocol(path), overwrite=True, progress=False)


def twenty_classes(tmp_path) -> str:
    """A 20-class npz (4×5 images; class c lights pixel c, over noise)."""
    rng = np.random.default_rng(0)

    def samples(per_class):
        y = np.repeat(np.arange(20), per_class)
        x = rng.integers(0, 60, (len(y), 20))
        x[np.arange(len(y)), y] = 255
        return x.reshape(-1, 4, 5).astype(np.uint8), y

    (x_train, y_train), (x_test, y_test) = samples(20), samples(5)
    path = tmp_path / "twenty.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


def test_classes_and_tasks_come_from_the_data(write_protocol, tmp_path):
    data = {"dataset": "npz", "path": twenty_classes(tmp_path)}
    model = TINY | {"layers": [20, 32, 20]}
    schedule = sequential(wake=WAKE | {"epochs": 30})
    content = digits_protocol(tmp_path, schedule, name="c20", model=model, data=data)
    R = run_dict(write_protocol, content)
    assert R.shape == (11, 10)  # at start + 10 tasks of 2 classes, each evaluated on 10 tasks
    assert R[1, 0] > 0.9 and R[-1, -1] > 0.9
    bad = content | {"data": data | {"classes_per_task": 3}}
    with pytest.raises(SpecError, match=r"c3\.yaml:\d+: data: the 20 classes do not divide"):
        load_protocol(write_protocol(bad | {"name": "c3"}, name="c3.yaml"))
    ten = content | {"data": data | {"class_order": list(range(10))}}
    with pytest.raises(SpecError, match=r"not a permutation of the data's classes 0\.\.19"):
        load_protocol(write_protocol(ten | {"name": "c10"}, name="c10.yaml"))


@pytest.mark.parametrize(
    "name",
    [
        "split_mnist_finetune",
        "split_mnist_sra",
        "split_mnist_sra_ce",
        "split_mnist_rehearsal_sra",
        "split_mnist_replay",
        "split_mnist_generative_replay",
        "split_mnist_ewc",
        "split_mnist_joint",
        "permuted_mnist_sra",
        "split_mnist_task_il_finetune",
    ],
)
def test_shipped_protocols_validate(root, name):
    protocol = load_protocol(root / "protocols" / f"{name}.yaml")
    assert protocol.model.kind == "mlp"
    kinds = [p.kind for p in protocol.phases]
    assert kinds[0] == "test" and kinds.count("wake") in (1, 5)
    sleeps = [p.params.steps for p in protocol.phases if p.kind == "sleep"]
    assert sleeps in ([], [15000, 20000, 25000, 30000, 35000])  # the paper's growing sleep
