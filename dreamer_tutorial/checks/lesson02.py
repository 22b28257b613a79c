"""Graders of lesson 02 (encoder and decoder): preprocessing, the image likelihood, convolution output sizes, and the
encoder and decoder modules themselves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch import nn

from ._core import call_learner, check_function, fail, passed, solution


@solution("dreamer_tutorial.networks.preprocess")
def check_preprocess(fn: Callable) -> None:
    from ..networks import preprocess

    check_function(fn, preprocess, lambda g: (torch.randint(0, 256, (2, 5, 64, 64, 3), generator=g,
                                                            dtype=torch.uint8),),
                   name="preprocess", hint="(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-0.5, 0.5]: divide "
                   "by 255, subtract 0.5, move the channel axis")


@solution("dreamer_tutorial.networks.normal_nll")
def check_image_nll(fn: Callable) -> None:
    from ..networks import normal_nll

    def make_inputs(g):
        return torch.randn(4, 3, 64, 64, generator=g) * 0.3, torch.rand(4, 3, 64, 64, generator=g) - 0.5
    check_function(fn, lambda mean, target: normal_nll(mean, target, event_dims=3), make_inputs,
                   name="image_nll", grad_inputs=(0,), atol=1e-3,
                   hint="unit-variance Gaussian without the constant: 0.5 (x - mean)^2, summed over (C, H, W), "
                   "one value per image")


def reference_conv_output_size(size: int, kernel: int, stride: int, transposed: bool = False) -> int:
    """Side length after a valid (unpadded) convolution, or after a transposed convolution (no output padding)."""
    return (size - 1) * stride + kernel if transposed else (size - kernel) // stride + 1


def check_conv_output_size(fn: Callable) -> None:
    name, hint = "conv_output_size", ("a valid convolution fits floor((n - k) / s) + 1 windows of size k, s apart; "
                                      "a transposed convolution places n windows of size k, s apart")
    cases = [(64, 4, 2, False), (31, 4, 2, False), (14, 4, 2, False), (6, 4, 2, False), (96, 8, 4, False),
             (10, 3, 1, False), (1, 5, 2, True), (5, 5, 2, True), (13, 6, 2, True), (30, 6, 2, True), (7, 3, 1, True)]
    for size, kernel, stride, transposed in cases:
        args = f"size={size}, kernel={kernel}, stride={stride}, transposed={transposed}"
        got = call_learner(name, fn, size, kernel, stride, transposed=transposed, hint=hint, context=f"for {args}")
        if got != reference_conv_output_size(size, kernel, stride, transposed):
            fail(name, f"wrong value {got!r} for {args}.", hint)
    passed(name, fn)


# --- the core exercise: the encoder and decoder as nn.Modules -----------------------------------------------------

_ENCODER_DEPTH, _DECODER_FEAT = 5, 37  # small, and no two parameters of the package's modules share a shape


def _activation_names() -> dict[str, Callable]:
    return {"ReLU": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def _run_layers(layers, x, acts):
    for layer, act in zip(layers, acts, strict=True):
        x = layer(x)
        x = act(x) if act is not None else x
    return x


def _encoder_nets(reference) -> tuple[Callable, list[tuple[str, Callable]]]:
    """The package encoder as plain layer calls, and typical mistakes: functions of the input with its weights."""
    convs = [m for m in reference.modules() if isinstance(m, nn.Conv2d)]
    elu = nn.functional.elu

    def net(acts):
        return lambda x: _run_layers(convs, x, acts).flatten(1)
    variants = [(f"with {act_name} in place of ELU", net([act] * 4)) for act_name, act in _activation_names().items()]
    variants += [(f"without the activation after convolution {i + 1}", net([None if j == i else elu for j in range(4)]))
                 for i in range(4)]
    variants.append(("without any activation", net([None] * 4)))
    return net([elu] * 4), variants


def _decoder_nets(reference) -> tuple[Callable, list[tuple[str, Callable]]]:
    """The package decoder as plain layer calls (its first layer runs as a matrix product, which hooks cannot see),
    and typical mistakes."""
    deconvs = [m for m in reference.modules() if isinstance(m, nn.ConvTranspose2d)]
    elu, channels = nn.functional.elu, 32 * reference.depth

    def net(acts, after_linear=None, out=None):
        def forward(feat):
            x = reference.linear(feat)
            x = after_linear(x) if after_linear is not None else x
            x = _run_layers(deconvs, x.reshape(-1, channels, 1, 1), acts)
            return out(x) if out is not None else x
        return forward
    hidden = [elu, elu, elu, None]
    variants = [(f"with {act_name} in place of ELU", net([act, act, act, None]))
                for act_name, act in _activation_names().items()]
    variants += [(f"without the activation after transposed convolution {i + 1}",
                  net([None if j == i else act for j, act in enumerate(hidden)])) for i in range(3)]
    variants.append(("with an activation after the linear layer (DreamerV2 has none there)", net(hidden, elu)))
    variants += [(f"with a {act_name} on the output: the mean of a unit-variance Gaussian over pixels is unbounded, "
                  "so the last layer has no activation", net(hidden, out=act))
                 for act_name, act in {"ELU": elu, **_activation_names()}.items()]
    variants.append(("plus 0.5: the mean is in the preprocessed units, [-0.5, 0.5], not [0, 1]",
                     net(hidden, out=lambda x: x + 0.5)))
    return net(hidden), variants


def _layer_outputs(module: nn.Module, kind: type[nn.Module], run: Callable,
                   x: torch.Tensor) -> list[tuple[int, ...]] | None:
    """The output shapes of `module`'s layers of type `kind` while `run(x)` runs, in order (None if it crashes)."""
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda m, i, out: shapes.append(tuple(out.shape)))
             for m in module.modules() if isinstance(m, kind)]
    try:
        with torch.no_grad():
            run(x)
    except Exception:  # the caller reports the crash itself; this is only a diagnosis
        return None
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _diagnose_shapes(name, learner, reference, plain, x, kind, label, hint):
    """Fail with the first layer of type `kind` whose output differs from the package's (channels or size)."""
    mine, expected = _layer_outputs(learner, kind, learner, x), _layer_outputs(reference, kind, plain, x)
    if mine is None or not mine:
        return
    if len(mine) != len(expected):
        fail(name, f"your module runs {len(mine)} {label}s, expected {len(expected)}.", hint)
    for i, (a, b) in enumerate(zip(mine, expected, strict=True)):
        if a[1] != b[1]:
            fail(name, f"{label} {i + 1} outputs {a[1]} channels, expected {b[1]}: check its channels.", hint)
        if a[2:] != b[2:]:
            fail(name, f"{label} {i + 1} outputs {a[2]} x {a[3]} maps, expected {b[2]} x {b[3]}: check its kernel "
                       "size, stride and padding.", hint)


def _compare_parameters(name, learner, reference, hint):
    mine = Counter(tuple(p.shape) for p in learner.parameters())
    expected = Counter(tuple(p.shape) for p in reference.parameters())
    if mine != expected:
        total, want = sum(p.numel() for p in learner.parameters()), sum(p.numel() for p in reference.parameters())
        extra, missing = sorted((mine - expected).elements()), sorted((expected - mine).elements())
        fail(name, f"your module has {total:,} parameters in {sum(mine.values())} tensors, expected {want:,} in "
                   f"{sum(expected.values())}. Shapes of yours that are not expected: {extra or 'none'}; expected "
                   f"shapes you lack: {missing or 'none'} (a weight's shape is (out, in, kH, kW) for a convolution, "
                   "(in, out, kH, kW) for a transposed one, (out, in) for a linear layer).", hint)


def _copy_by_shape(reference, learner):
    """Copy the package's weights into the learner's module: each learner parameter, in registration order, takes
    the first unused package parameter of the same shape (so any attribute names work)."""
    unused = list(reference.parameters())
    with torch.no_grad():
        for p in learner.parameters():
            i = next(i for i, q in enumerate(unused) if q.shape == p.shape)
            p.copy_(unused.pop(i))


def _check_module(name: str, cls: Callable, args: tuple, reference: nn.Module, make_input: Callable,
                  kind: type[nn.Module], label: str, nets: tuple[Callable, list[tuple[str, Callable]]],
                  hint: str) -> None:
    """Shapes, parameters, gradients, then values with the package's weights copied in. `nets`: the package module
    as plain layer calls, and (description, function) pairs of typical mistakes that use its weights."""
    plain, variants = nets
    call = f"{getattr(cls, '__qualname__', cls)}{args}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        learner = call_learner(name, cls, *args, hint=hint, context=f"building {call}")
    if not isinstance(learner, nn.Module):
        fail(name, f"{call} built a {type(learner).__name__}, expected an nn.Module.", hint)
    generator = torch.Generator().manual_seed(0)
    x = make_input(generator)
    out = call_learner(name, learner, x, hint=hint, context=f"on input of shape {tuple(x.shape)}")
    want = reference(x)
    if not torch.is_tensor(out):
        fail(name, f"forward returned a {type(out).__name__}, expected a tensor.", hint)
    shapes = Counter(tuple(p.shape) for p in learner.parameters())
    if out.shape != want.shape or shapes != Counter(tuple(p.shape) for p in reference.parameters()):
        _diagnose_shapes(name, learner, reference, plain, x, kind, label, hint)  # names the first layer that differs
    if out.shape != want.shape:
        fail(name, f"output has shape {tuple(out.shape)} for input {tuple(x.shape)}, expected {tuple(want.shape)}.",
             hint)
    _compare_parameters(name, learner, reference, hint)
    _copy_by_shape(reference, learner)
    for trial in range(2):
        x = make_input(generator)
        out, want = learner(x), reference(x)
        if trial == 0:
            grads = (torch.autograd.grad(out.sum(), list(learner.parameters()), allow_unused=True)
                     if out.requires_grad else [None] * len(list(learner.parameters())))
            cut = [n for (n, _), g in zip(learner.named_parameters(), grads, strict=True) if g is None]
            if cut:
                fail(name, f"no gradient reaches {cut}: is something detached or computed under no_grad?", hint)
        out, want = out.detach(), want.detach()
        if torch.allclose(out, want, atol=1e-5, rtol=1e-4):
            continue
        error = (out - want).abs().max().item()
        what = f"with the package's weights copied in, the outputs differ (largest error {error:.3g})."
        if torch.allclose(out.flatten(1).sort(1).values, want.flatten(1).sort(1).values, atol=1e-5, rtol=1e-4):
            fail(name, what + " They are the right numbers in the wrong order: flatten or reshape (C, H, W) in "
                              "that order.", hint)
        with torch.no_grad():
            for description, variant in variants:
                if torch.allclose(out, variant(x), atol=1e-5, rtol=1e-4):
                    fail(name, what + f" Your output is what the package's network gives {description}.", hint)
            design = torch.stack([want.flatten(), torch.ones(want.numel())], 1)
            scale, shift = torch.linalg.lstsq(design, out.flatten()[:, None]).solution.flatten().tolist()
            if torch.allclose(out, scale * want + shift, atol=1e-4, rtol=1e-3):
                shifted = f" {shift:+.3g}" if abs(shift) > 1e-4 else ""
                fail(name, what + f" Your output is {scale:.3g} x the expected one{shifted}: wrong output scaling.",
                     hint)
        fail(name, what + " Check the activations and the order of the layers.", hint)
    passed(name, cls)


@solution("dreamer_tutorial.networks.ConvEncoder")
def check_encoder(cls: Callable) -> None:
    """Grade an encoder class `cls(depth)` whose forward maps (B, 3, 64, 64) images to (B, 32 * depth) features."""
    from ..networks import ConvEncoder

    with torch.random.fork_rng(devices=[]):
        reference = ConvEncoder(_ENCODER_DEPTH)
    _check_module("encoder", cls, (_ENCODER_DEPTH,), reference,
                  lambda g: torch.rand(4, 3, 64, 64, generator=g) - 0.5, nn.Conv2d, "convolution",
                  _encoder_nets(reference),
                  hint="4 convolutions (kernel 4, stride 2, no padding) with d, 2d, 4d, 8d output channels, an ELU "
                  "after each, then flatten each image's (C, H, W) map into 32 d features")


@solution("dreamer_tutorial.networks.ConvDecoder")
def check_decoder(cls: Callable) -> None:
    """Grade a decoder class `cls(feat_dim, depth)` whose forward maps (B, feat_dim) features to (B, 3, 64, 64)."""
    from ..networks import ConvDecoder

    with torch.random.fork_rng(devices=[]):
        reference = ConvDecoder(_DECODER_FEAT, _ENCODER_DEPTH)
    _check_module("decoder", cls, (_DECODER_FEAT, _ENCODER_DEPTH), reference,
                  lambda g: torch.randn(4, _DECODER_FEAT, generator=g), nn.ConvTranspose2d, "transposed convolution",
                  _decoder_nets(reference),
                  hint="a linear layer to 32 d numbers (no activation), viewed as a (32 d, 1, 1) map, then transposed "
                  "convolutions with stride 2, kernels 5, 5, 6, 6 and 4d, 2d, d, 3 channels, ELU after all but "
                  "the last: the output is the mean image itself")
