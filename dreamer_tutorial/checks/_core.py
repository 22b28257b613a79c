"""What every grader shares: the failure type, calling the learner's code, reporting, and the comparison on random
inputs (values and gradients).

Reporting convention (every grader, old and new):
- a learner's function that raises `NotImplementedError` fails with the one-line `not_implemented(name)` message;
- any other failure raises `CheckFailed("<name>: <what is wrong>\\n  hint: <hint>")` via `fail`; it says what is
  wrong (shape, values, sign, off by one step, a gradient that leaks or is missing) but never the expected values;
- success prints the one line `passed(name, fn)`, which says whether the learner's code or the package's reference
  was graded (`graded(fn)`), so a learner who left `USE_REFERENCE = True` is not misled.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch


class CheckFailed(AssertionError):
    """Raised by a grader when the learner's function disagrees with the reference."""


def not_implemented(name: str) -> str:
    return (f"{name}: not implemented yet - write your code in the exercise cell (where it says YOUR CODE HERE), "
            "run that cell, then this one.")


def _message(name: str, what: str, hint: str) -> str:
    return f"{name}: {what}" + (f"\n  hint: {hint}" if hint else "")


def fail(name: str, what: str, hint: str = "") -> None:
    """Raise `CheckFailed` saying what is wrong, followed by the grader's hint."""
    raise CheckFailed(_message(name, what, hint))


def call_learner(name: str, fn: Callable, *args, hint: str = "", context: str = "", **kwargs) -> Any:
    """`fn(*args, **kwargs)`, with the learner's stub or crash turned into a `CheckFailed`.

    `fn` may be a function, a class (then this builds an instance) or a bound method. `context` is appended to a
    crash report (e.g. which arguments).
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(not_implemented(name)) from None  # from None: no chained traceback, one line
    except Exception as error:  # the learner's code crashed: report it as a failed check (the cause stays chained)
        where = f" ({context})" if context else ""
        raise CheckFailed(_message(name, f"your code raised {type(error).__name__}: {error}{where}", hint)) from error


def graded(fn: Any) -> str:
    """Which code a grader ran: "your code (<qualname>)", or "the reference implementation (<module.qualname>)"
    when `fn` (a function, class, instance or module) comes from the `dreamer_tutorial` package, the checks'
    own `reference_*` functions included."""
    if isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.ismethod(fn):
        fn = fn.__func__
    if inspect.ismodule(fn):
        module, qualname = fn.__name__, fn.__name__
    else:
        owner = fn if hasattr(fn, "__qualname__") else type(fn)  # an instance: name its class
        module, qualname = getattr(owner, "__module__", "") or "", owner.__qualname__
    if module == "dreamer_tutorial" or module.startswith("dreamer_tutorial."):
        full = qualname if inspect.ismodule(fn) else f"{module}.{qualname}"
        return f"the reference implementation ({full})"
    return f"your code ({qualname})"


def passed(name: str, fn: Any) -> None:
    """Print the grader's one success line."""
    print(f"✅ {name} passed - graded: {graded(fn)}")


_SOLUTIONS: dict[str, str] = {}  # exercise name -> dotted path of the package object a grader compares against


def solution(target: str) -> Callable:
    """Decorate a grader `check_<name>` whose reference is the package object at dotted path `target` (a function
    or class, e.g. "dreamer_tutorial.networks.ConvEncoder"), so that `show_solution("<name>")` can print it."""
    def register(grader: Callable) -> Callable:
        _SOLUTIONS[grader.__name__.removeprefix("check_")] = target
        return grader
    return register


def _resolve(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def show_solution(name: str) -> None:
    """Print the reference solution of exercise `name` ("resize_frame", or "check_resize_frame"): the source of
    its `reference_*` function, or of the package function or class its grader compares against."""
    from .. import checks

    name = name.removeprefix("check_").removeprefix("reference_")
    reference = getattr(checks, f"reference_{name}", None)
    if reference is None and name in _SOLUTIONS:
        reference = _resolve(_SOLUTIONS[name])
    if reference is None:
        known = sorted({n.removeprefix("check_") for n in dir(checks) if n.startswith("check_")} - {"function"})
        raise ValueError(f"show_solution: no exercise named {name!r}; expected one of {', '.join(known)}")
    print(f"# reference solution of {name}: {reference.__module__}.{reference.__qualname__}")
    print(inspect.getsource(reference))


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _diagnose(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> str:
    """A description of a systematic mistake that turns the expected `b` into the learner's `a` (or "")."""
    if b.numel() == 0:
        return ""
    if b.abs().max() > atol and torch.allclose(a, -b, atol=atol, rtol=rtol):
        return " They are the expected values with the opposite sign: is a sign flipped?"
    for dim in range(b.dim()):
        n = b.shape[dim]
        if n < 3:
            continue
        for first, second, entry in ((a, b, "t + 1"), (b, a, "t - 1")):  # your entry t == expected entry t +- 1
            early, late = first.narrow(dim, 0, n - 1), second.narrow(dim, 1, n - 1)
            if late.abs().max() > atol and torch.allclose(early, late, atol=atol, rtol=rtol):
                return (f" Along axis {dim}, your entry t equals the expected entry {entry}: an off-by-one "
                        "in the index?")
    return ""


def check_function(learner: Callable, reference: Callable, make_inputs: Callable[[torch.Generator], Sequence],
                   *, name: str, trials: int = 3, atol: float = 1e-5, rtol: float = 1e-4,
                   grad_inputs: Sequence[int] = (), hint: str = "", seed: int = 0, report: bool = True) -> None:
    """Compare `learner(*inputs)` with `reference(*inputs)` on `trials` random inputs.

    `make_inputs(generator)` returns the positional arguments (fresh tensors each call). Outputs may be a tensor
    or a tuple of tensors. For the argument positions in `grad_inputs`, the gradient of a random projection of
    the outputs with respect to that argument must match too (checks that the learner's version is
    differentiable in the same way, e.g. straight-through estimators or stop-gradients). `report=False` skips
    the success line, for graders that make several comparisons and then call `passed` once.
    """
    generator = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        state = generator.get_state()
        outputs = []
        for fn in (learner, reference):
            generator.set_state(state)
            args = list(make_inputs(generator))
            for i in grad_inputs:
                args[i] = args[i].detach().clone().requires_grad_(True)
            out = _as_tuple(fn(*args) if fn is reference else call_learner(name, fn, *args, hint=hint))
            outputs.append((args, out))
        (args_l, out_l), (args_r, out_r) = outputs
        if len(out_l) != len(out_r):
            fail(name, f"expected {len(out_r)} output(s), got {len(out_l)}.", hint)
        for k, (a, b) in enumerate(zip(out_l, out_r, strict=True)):
            label = f"output {k}" if len(out_r) > 1 else "output"
            a = torch.as_tensor(a)
            if tuple(a.shape) != tuple(b.shape):
                fail(name, f"{label} has shape {tuple(a.shape)}, expected {tuple(b.shape)}.", hint)
            a, b = a.detach().float(), b.detach().float()
            if not torch.allclose(a, b, atol=atol, rtol=rtol):
                diff = (a - b).abs()
                where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.dim() else ()
                fail(name, f"{label} values are wrong on random input #{trial + 1}: largest error "
                           f"{diff.max().item():.4g} at index {where}.{_diagnose(a, b, atol, rtol)}", hint)
        if grad_inputs:
            _compare_gradients(name, args_l, out_l, args_r, out_r, grad_inputs, generator, atol, rtol, hint)
    if report:
        passed(name, learner)


def _compare_gradients(name, args_l, out_l, args_r, out_r, grad_inputs, generator, atol, rtol, hint):
    weights = [torch.randn(o.shape, generator=generator) for o in out_r]

    def grads(args, outs):
        total = sum((w * o.float()).sum() for w, o in zip(weights, outs, strict=True) if o.requires_grad)
        if not torch.is_tensor(total):
            return [None for _ in grad_inputs]
        return torch.autograd.grad(total, [args[i] for i in grad_inputs], allow_unused=True)

    for i, g_l, g_r in zip(grad_inputs, grads(args_l, out_l), grads(args_r, out_r), strict=True):
        if g_r is None or not g_r.any():
            if g_l is not None and g_l.any():
                fail(name, f"a gradient reaches argument {i}, where none should flow: is a stop-gradient "
                           f"(.detach()) missing?", hint)
            continue
        if g_l is None:
            fail(name, f"no gradient reaches argument {i}: is something detached or converted to an integer?", hint)
        if not torch.allclose(g_l, g_r, atol=atol, rtol=rtol):
            fail(name, f"the values are right but the gradient with respect to argument {i} is wrong "
                       f"(largest error {(g_l - g_r).abs().max().item():.4g}).", hint)
