"""Graders for the lessons' exercises.

Each `check_*` function takes the learner's function, runs it and the package's reference on a few random
inputs, and either prints a short success line or raises `CheckFailed` with what is wrong (an exception, the
shape, the values, or the gradient) and a hint. Messages never print the reference's outputs, only where and by
how much the learner's differ, so they help without giving the answer away. The comparison only looks at inputs
and outputs, so any correct implementation passes, not just the package's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


class CheckFailed(AssertionError):
    """Raised by a grader when the learner's function disagrees with the reference."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _fail(name: str, what: str, hint: str) -> None:
    message = f"{name}: {what}"
    if hint:
        message += f"\n  hint: {hint}"
    raise CheckFailed(message)


def check_function(learner: Callable, reference: Callable, make_inputs: Callable[[torch.Generator], Sequence],
                   *, name: str, trials: int = 3, atol: float = 1e-5, rtol: float = 1e-4,
                   grad_inputs: Sequence[int] = (), hint: str = "", seed: int = 0) -> None:
    """Compare `learner(*inputs)` with `reference(*inputs)` on `trials` random inputs.

    `make_inputs(generator)` returns the positional arguments (fresh tensors each call). Outputs may be a tensor
    or a tuple of tensors. For the argument positions in `grad_inputs`, the gradient of a random projection of
    the outputs with respect to that argument must match too (checks that the learner's version is
    differentiable in the same way, e.g. straight-through estimators or stop-gradients).
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
            try:
                out = _as_tuple(fn(*args))
            except NotImplementedError:
                _fail(name, "not implemented yet: replace the `raise NotImplementedError` with your code.", hint)
            except Exception as error:  # the learner's code crashed: report it as a failed check
                if fn is reference:
                    raise
                _fail(name, f"your function raised {type(error).__name__}: {error}", hint)
            outputs.append((args, out))
        (args_l, out_l), (args_r, out_r) = outputs
        if len(out_l) != len(out_r):
            _fail(name, f"expected {len(out_r)} output(s), got {len(out_l)}.", hint)
        for k, (a, b) in enumerate(zip(out_l, out_r, strict=True)):
            label = f"output {k}" if len(out_r) > 1 else "output"
            a = torch.as_tensor(a)
            if tuple(a.shape) != tuple(b.shape):
                _fail(name, f"{label} has shape {tuple(a.shape)}, expected {tuple(b.shape)}.", hint)
            if not torch.allclose(a.detach().float(), b.detach().float(), atol=atol, rtol=rtol):
                diff = (a.detach().float() - b.detach().float()).abs()
                where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.dim() else ()
                _fail(name, f"{label} values are wrong on random input #{trial + 1}: largest error "
                            f"{diff.max().item():.4g} at index {where}.", hint)
        if grad_inputs:
            _compare_gradients(name, args_l, out_l, args_r, out_r, grad_inputs, generator, atol, rtol, hint)
    print(f"✅ {name}: correct on {trials} random inputs" + (" (values and gradients)" if grad_inputs else ""))


def _compare_gradients(name, args_l, out_l, args_r, out_r, grad_inputs, generator, atol, rtol, hint):
    weights = [torch.randn(o.shape, generator=generator) for o in out_r]

    def grads(args, outs):
        total = sum((w * o.float()).sum() for w, o in zip(weights, outs, strict=True) if o.requires_grad)
        if not torch.is_tensor(total):
            return [None for _ in grad_inputs]
        return torch.autograd.grad(total, [args[i] for i in grad_inputs], allow_unused=True)

    for i, g_l, g_r in zip(grad_inputs, grads(args_l, out_l), grads(args_r, out_r), strict=True):
        if g_r is None:
            continue
        if g_l is None:
            _fail(name, f"no gradient reaches argument {i}: is something detached or converted to an integer?",
                  hint)
        if not torch.allclose(g_l, g_r, atol=atol, rtol=rtol):
            _fail(name, f"the values are right but the gradient with respect to argument {i} is wrong "
                        f"(largest error {(g_l - g_r).abs().max().item():.4g}).", hint)


# Lesson-specific graders follow, one section per lesson; each is a thin wrapper around check_function.


# --- lesson 01 ---


# --- lesson 02 ---


# --- lesson 03 ---


# --- lesson 04 ---


# --- lesson 05 ---


# --- lesson 06 ---


# --- lesson 07 ---


# --- lesson 08 ---
