"""convscope.optim against torch.optim: updates, param groups, state dicts, schedulers, errors."""

from __future__ import annotations

import io
import itertools
import json
import warnings

import numpy as np
import pytest
import torch

from convscope import optim
from convscope.autograd.tensor import Tensor
from convscope.optim import lr_scheduler as sched
from convscope.optim import state_dict_from_arrays, state_dict_to_arrays

try:
    from convscope.nn import Parameter
except ImportError:  # nn still being built: a Parameter is exactly a leaf Tensor requiring grad

    def Parameter(array):
        return Tensor(np.asarray(array), requires_grad=True)


SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]
STEPS = 20
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _make(dtype, seed=0):
    """Initial values and a fixed gradient sequence; grad None for param 1 at steps 4 and 11."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [
        [
            None if (i == 1 and t in (4, 11)) else rng.standard_normal(s).astype(dtype)
            for i, s in enumerate(SHAPES)
        ]
        for t in range(STEPS)
    ]
    return init, grads


def _set_grads(ours, theirs, grads):
    for p, q, g in zip(ours, theirs, grads, strict=True):
        p.grad = None if g is None else Tensor(g.copy())
        q.grad = None if g is None else torch.from_numpy(g.copy())


def _run_parity(ours_cls, torch_cls, dtype, groups=None, **kw):
    init, grads = _make(dtype)
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    if groups is None:
        opt_c, opt_t = ours_cls(ours, **kw), torch_cls(theirs, **kw)
    else:  # groups: list of (param indices, options)
        opt_c = ours_cls([dict(params=[ours[i] for i in idx], **o) for idx, o in groups], **kw)
        opt_t = torch_cls([dict(params=[theirs[i] for i in idx], **o) for idx, o in groups], **kw)
    arrays = [p.data for p in ours]
    for t in range(STEPS):
        _set_grads(ours, theirs, grads[t])
        opt_c.step()
        opt_t.step()
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            assert p.data is arrays[i], "the update must be in place on p.data"
            assert p.data.dtype == dtype, f"param {i} became {p.data.dtype}"
            np.testing.assert_allclose(
                p.data, q.detach().numpy(), err_msg=f"step {t} param {i}", **TOL[dtype]
            )
    return opt_c, opt_t


SGD_CONFIGS = [
    dict(lr=lr, momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for lr, m, d, n, wd, mx in itertools.product(
        [0.1, 0.01, 1e-3], [0.0, 0.9], [0.0, 0.5], [False, True], [0.0, 0.1], [False, True]
    )
    if not (n and (m == 0 or d != 0))
]

ADAM_CONFIGS = [
    dict(lr=lr, betas=b, weight_decay=wd, amsgrad=am, maximize=mx)
    for lr, b, wd, am, mx in itertools.product(
        [1e-3, 0.1], [(0.9, 0.999), (0.3, 0.9)], [0.0, 0.1], [False, True], [False, True]
    )
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_parity(cfg, dtype):
    _run_parity(optim.SGD, torch.optim.SGD, dtype, **cfg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=str)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_parity(name, cfg, dtype):
    # betas (0.3, 0.9) takes the other branch of torch's lerp (weight 1 - beta1 >= 0.5)
    _run_parity(getattr(optim, name), getattr(torch.optim, name), dtype, eps=1e-6, **cfg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "name, kw, groups",
    [
        ("SGD", dict(lr=0.01, momentum=0.9), [([0, 2], dict(lr=0.5)), ([1], dict(nesterov=True))]),
        ("Adam", dict(lr=1e-3), [([0], dict(lr=0.1, amsgrad=True)), ([1, 2], dict(betas=(0.5, 0.9)))]),
        ("AdamW", dict(lr=0.02), [([2], dict(weight_decay=0.5)), ([0, 1], dict(lr=0.3))]),
    ],
)
def test_param_groups_parity(name, kw, groups, dtype):
    opt_c, opt_t = _run_parity(getattr(optim, name), getattr(torch.optim, name), dtype, groups=groups, **kw)
    for gc, gt in zip(opt_c.param_groups, opt_t.param_groups, strict=True):
        assert {k: v for k, v in gc.items() if k != "params"} == {k: gt[k] for k in gc if k != "params"}


@pytest.mark.parametrize(
    "name, kw",
    [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01))],
)
def test_state_dict_layout_matches_torch(name, kw):
    opt_c, opt_t = _run_parity(
        getattr(optim, name),
        getattr(torch.optim, name),
        np.float32,
        groups=[([0], {}), ([1, 2], dict(lr=0.05))],
        **kw,
    )
    sc, st = opt_c.state_dict(), opt_t.state_dict()
    assert [g["params"] for g in sc["param_groups"]] == [g["params"] for g in st["param_groups"]]
    for gc, gt in zip(sc["param_groups"], st["param_groups"], strict=True):
        assert all(gc[k] == gt[k] for k in gc), (gc, gt)
    assert sorted(sc["state"]) == sorted(st["state"]) == [0, 1, 2]
    for i in sc["state"]:
        assert sorted(sc["state"][i]) == sorted(st["state"][i])
        for key, value in sc["state"][i].items():
            np.testing.assert_allclose(value, np.asarray(st["state"][i][key]), rtol=1e-5, atol=1e-6)


def _checkpoint_round_trip(state_dict):
    """Through .npz bytes (no pickle) and JSON text, as a checkpoint on disk would be."""
    arrays, meta = state_dict_to_arrays(state_dict, prefix="optimizer.")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        return state_dict_from_arrays(npz, json.loads(json.dumps(meta)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "name, kw",
    [
        ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
        ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
        ("AdamW", dict(lr=0.01, betas=(0.8, 0.99))),
    ],
)
def test_state_dict_round_trip_resumes_identically(name, kw, dtype):
    cls = getattr(optim, name)
    init, grads = _make(dtype, seed=3)

    def make(values):
        params = [Parameter(v.copy()) for v in values]
        return params, cls([{"params": params[:1], "lr": 0.2}, {"params": params[1:]}], **kw)

    def run(params, opt, steps):
        for t in steps:
            for p, g in zip(params, grads[t], strict=True):
                p.grad = None if g is None else Tensor(g.copy())
            opt.step()

    ref_params, ref_opt = make(init)
    run(ref_params, ref_opt, range(STEPS))

    params, opt = make(init)
    run(params, opt, range(7))
    saved, values = _checkpoint_round_trip(opt.state_dict()), [p.data.copy() for p in params]
    run(params, opt, range(7, 9))  # training on after saving must not change what was saved
    params, opt = make(values)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.2 and opt.param_groups[1]["params"] == params[1:]
    run(params, opt, range(7, STEPS))
    for p, q in zip(params, ref_params, strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_named_parameters_like_torch():
    w, b = np.ones((2, 2), np.float32), np.zeros(2, np.float32)
    opt_c = optim.SGD([("fc.weight", Parameter(w.copy())), ("fc.bias", Parameter(b.copy()))])
    opt_t = torch.optim.SGD(
        [
            ("fc.weight", torch.nn.Parameter(torch.from_numpy(w.copy()))),
            ("fc.bias", torch.nn.Parameter(torch.from_numpy(b.copy()))),
        ]
    )
    names = opt_t.state_dict()["param_groups"][0]["param_names"]
    assert opt_c.state_dict()["param_groups"][0]["param_names"] == names == ["fc.weight", "fc.bias"]
    with pytest.raises(ValueError, match="all parameters or none.*got 1 of 2"):
        optim.SGD([("w", _p()), _p()])
    with pytest.raises(ValueError, match="all param groups or none"):
        optim.SGD([{"params": [("w", _p())]}, {"params": [_p()]}])


def test_load_state_dict_casts_state_to_param_dtype():
    p64 = Parameter(np.ones(4))
    opt64 = optim.Adam([p64])
    p64.grad = Tensor(np.full(4, 0.5))
    opt64.step()
    p32 = Parameter(np.ones(4, dtype=np.float32))
    opt32 = optim.Adam([p32])
    opt32.load_state_dict(opt64.state_dict())
    state = opt32.state[p32]
    assert state["step"] == 1
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == np.float32


def test_state_dict_to_arrays_rejects_objects():
    with pytest.raises(TypeError, match="state\\[0\\]\\['weird'\\]"):
        state_dict_to_arrays({"state": {0: {"weird": object()}}, "param_groups": []})


def test_zero_grad():
    p, q = Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float32))
    opt = optim.SGD([p, q], lr=0.1)
    p.grad = Tensor(np.ones(3, np.float32))
    grad_array = p.grad.data
    opt.zero_grad(set_to_none=False)
    assert p.grad.data is grad_array and not grad_array.any() and q.grad is None
    opt.zero_grad()
    assert p.grad is None


def test_step_leaves_grad_alone_and_buffer_does_not_alias_it():
    p = Parameter(np.ones(3, np.float32))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)
    p.grad = Tensor(np.full(3, 2.0, np.float32))
    opt.step()
    np.testing.assert_array_equal(p.grad.data, np.full(3, 2.0, np.float32))
    opt.zero_grad(set_to_none=False)
    assert opt.state[p]["momentum_buffer"].any()


def test_closure_and_skipped_params():
    p, q = Parameter(np.ones(2, np.float32)), Parameter(np.ones(2, np.float32))
    opt = optim.Adam([p, q], lr=0.1)

    def closure():
        p.grad = Tensor(np.ones(2, np.float32))
        return 1.5

    assert opt.step(closure) == 1.5
    assert p in opt.state and q not in opt.state and np.all(q.data == 1)


# ---- schedulers ------------------------------------------------------------------------------


def _sched_pair(make_c, make_t, lrs=(0.1, 0.03), base="SGD"):
    opt_c = getattr(optim, base)([{"params": [Parameter(np.ones(2))], "lr": lr} for lr in lrs])
    opt_t = getattr(torch.optim, base)(
        [{"params": [torch.nn.Parameter(torch.ones(2))], "lr": lr} for lr in lrs]
    )
    return opt_c, opt_t, make_c(opt_c), make_t(opt_t)


SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=1)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=1e-3)),
]


@pytest.mark.parametrize("name, kw", SCHEDULERS, ids=str)
def test_scheduler_parity(name, kw):
    ours, theirs = getattr(sched, name), getattr(torch.optim.lr_scheduler, name)
    opt_c, opt_t, s_c, s_t = _sched_pair(lambda o: ours(o, **kw), lambda o: theirs(o, **kw))
    assert [g["initial_lr"] for g in opt_c.param_groups] == [0.1, 0.03] == s_c.base_lrs
    epochs = 3 * kw.get("T_max", 10) + 5
    for epoch in range(epochs):
        assert s_c.get_last_lr() == s_t.get_last_lr(), f"epoch {epoch}"
        assert [g["lr"] for g in opt_c.param_groups] == s_c.get_last_lr()
        assert s_c.last_epoch == s_t.last_epoch == epoch
        opt_c.step(), opt_t.step()
        s_c.step(), s_t.step()


def test_cosine_follows_closed_form_including_past_t_max():
    opt_c, _, s_c, _ = _sched_pair(
        lambda o: sched.CosineAnnealingLR(o, T_max=6, eta_min=0.01), lambda o: None, lrs=(0.1,)
    )
    for epoch in range(30):
        expected = 0.01 + (0.1 - 0.01) * (1 + np.cos(np.pi * epoch / 6)) / 2
        assert s_c.get_last_lr()[0] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        s_c.step()


def test_chained_schedulers_and_outside_lr_changes_match_torch():
    def both(o, mod):
        return [
            mod.StepLR(o, step_size=4, gamma=0.5),
            mod.MultiStepLR(o, milestones=[3, 6]),
            mod.CosineAnnealingLR(o, T_max=5),
        ]

    opt_c, opt_t, ss_c, ss_t = _sched_pair(
        lambda o: both(o, sched), lambda o: both(o, torch.optim.lr_scheduler)
    )
    for epoch in range(25):
        if epoch == 8:
            for o in (opt_c, opt_t):
                o.param_groups[0]["lr"] *= 2.0
        opt_c.step(), opt_t.step()
        for s_c, s_t in zip(ss_c, ss_t, strict=True):
            s_c.step(), s_t.step()
        assert [g["lr"] for g in opt_c.param_groups] == [g["lr"] for g in opt_t.param_groups]


@pytest.mark.parametrize("name, kw", SCHEDULERS, ids=str)
def test_scheduler_step_with_epoch_uses_closed_form_like_torch(name, kw):
    ours, theirs = getattr(sched, name), getattr(torch.optim.lr_scheduler, name)
    opt_c, opt_t, s_c, s_t = _sched_pair(lambda o: ours(o, **kw), lambda o: theirs(o, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates step(epoch)
        for epoch in [5, 2, 13, 0, 9]:
            opt_t.step()
            s_c.step(epoch), s_t.step(epoch)
            assert s_c.get_last_lr() == s_t.get_last_lr()


@pytest.mark.parametrize("name, kw", SCHEDULERS, ids=str)
def test_scheduler_resume_with_last_epoch_matches_torch(name, kw):
    ours, theirs = getattr(sched, name), getattr(torch.optim.lr_scheduler, name)
    opt_c, opt_t, _, _ = _sched_pair(lambda o: ours(o, **kw), lambda o: theirs(o, **kw))
    s_c, s_t = ours(opt_c, last_epoch=4, **kw), theirs(opt_t, last_epoch=4, **kw)
    for _ in range(12):
        assert s_c.get_last_lr() == s_t.get_last_lr()
        opt_t.step()
        s_c.step(), s_t.step()


@pytest.mark.parametrize("name, kw", SCHEDULERS, ids=str)
def test_scheduler_state_dict_round_trip(name, kw):
    cls = getattr(sched, name)

    def make():
        opt = optim.SGD([{"params": [Parameter(np.ones(2))], "lr": lr} for lr in (0.1, 0.03)])
        return opt, cls(opt, **kw)

    ref_opt, ref = make()
    expected = [ref.get_last_lr() for _ in range(20) if ref.step() is None]
    opt, s = make()
    for _ in range(7):
        s.step()
    opt_state, s_state = json.loads(json.dumps(opt.state_dict())), json.loads(json.dumps(s.state_dict()))
    opt, s = make()  # as torch advises: build the scheduler, then load the optimizer
    opt.load_state_dict(opt_state)
    s.load_state_dict(s_state)
    got = [s.get_last_lr() for _ in range(13) if s.step() is None]
    assert got == expected[7:]


def test_initial_lr_is_kept_by_a_second_scheduler():
    opt = optim.SGD([Parameter(np.ones(2))], lr=0.1)
    sched.StepLR(opt, step_size=1, gamma=0.5).step()
    second = sched.CosineAnnealingLR(opt, T_max=3)
    assert opt.param_groups[0]["initial_lr"] == 0.1 == second.base_lrs[0]
    assert opt.param_groups[0]["lr"] == 0.05


# ---- errors ----------------------------------------------------------------------------------


def _p(*shape):
    return Parameter(np.ones(shape or (2,), np.float32))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optim.SGD([_p()], lr=-0.1), "invalid lr: expected a number >= 0.0, got -0.1"),
        (lambda: optim.Adam([_p()], lr=-1.0), "invalid lr"),
        (lambda: optim.AdamW([_p()], lr=-1e-3), "invalid lr"),
        (lambda: optim.SGD([{"params": [_p()], "lr": -1.0}], lr=0.1), "invalid lr.*got -1.0"),
        (lambda: optim.SGD([_p()], momentum=-0.5), "invalid momentum: expected .*>= 0.0, got -0.5"),
        (lambda: optim.SGD([_p()], weight_decay=-1.0), "invalid weight_decay"),
        (lambda: optim.Adam([_p()], weight_decay=-1.0), "invalid weight_decay"),
        (lambda: optim.Adam([_p()], eps=-1e-8), "invalid eps: expected a number >= 0.0"),
        (
            lambda: optim.Adam([_p()], betas=(1.0, 0.999)),
            r"invalid betas\[0\]: expected a number in \[0.0, 1.0\)",
        ),
        (lambda: optim.AdamW([_p()], betas=(0.9, -0.1)), r"invalid betas\[1\].*got -0.1"),
        (lambda: optim.Adam([_p()], betas=(0.9,)), r"invalid betas: expected a pair"),
        (lambda: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda: optim.Adam(iter([])), "empty parameter list"),
        (lambda: optim.SGD([p := _p(), p]), "appears twice"),
        (lambda: optim.SGD([{"params": [p := _p()]}, {"params": [_p(), p]}]), "appears twice.*group 1"),
        (lambda: optim.SGD([_p()], momentum=0.0, nesterov=True), "nesterov=True needs momentum > 0"),
        (
            lambda: optim.SGD([_p()], momentum=0.9, dampening=0.1, nesterov=True),
            "nesterov.*dampening == 0.*dampening=0.1",
        ),
        (lambda: optim.SGD([_p() * 2]), "not a leaf"),
    ],
)
def test_optimizer_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optim.SGD(_p()), "got a single (Tensor|Parameter); wrap it in a list"),
        (lambda: optim.SGD([np.ones(2)]), "can only optimize Tensors.*ndarray"),
        (lambda: optim.SGD({_p()}), "ordered collection"),
        (lambda: sched.StepLR(object(), step_size=1), "expected an Optimizer"),
    ],
)
def test_type_errors(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_load_state_dict_mismatch_errors():
    a, b, c = _p(), _p(), _p()
    two_groups = optim.SGD([{"params": [a]}, {"params": [b, c]}], momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="has 2 parameter groups; expected 1"):
        optim.SGD([_p(), _p(), _p()], momentum=0.9).load_state_dict(two_groups)
    with pytest.raises(ValueError, match="group 1 of the state dict has 2 parameters; expected 1"):
        optim.SGD([{"params": [_p()]}, {"params": [_p()]}]).load_state_dict(two_groups)
    a.grad = Tensor(np.ones(2, np.float32))
    opt = optim.SGD([a], momentum=0.9)
    opt.step()
    with pytest.raises(ValueError, match=r"'momentum_buffer'.*shape \(2,\); expected \(3,\)"):
        optim.SGD([_p(3)], momentum=0.9).load_state_dict(opt.state_dict())


def test_grad_shape_mismatch_error():
    p = _p(2, 3)
    p.grad = Tensor(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"shape \(3, 2\); expected the parameter's shape \(2, 3\)"):
        optim.Adam([p]).step()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda o: sched.StepLR(o, step_size=0), "invalid step_size: expected an integer >= 1, got 0"),
        (lambda o: sched.CosineAnnealingLR(o, T_max=0), "invalid T_max"),
        (lambda o: sched.MultiStepLR(o, milestones=[3, -1]), "invalid milestones.*got -1"),
        (lambda o: sched.StepLR(o, step_size=2, last_epoch=3), "no 'initial_lr'"),
    ],
)
def test_scheduler_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make(optim.SGD([_p()], lr=0.1))
