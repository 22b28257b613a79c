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
        if g_r is None or not g_r.any():
            if g_l is not None and g_l.any():
                _fail(name, f"a gradient reaches argument {i}, where none should flow: is a stop-gradient "
                            f"(.detach()) missing?", hint)
            continue
        if g_l is None:
            _fail(name, f"no gradient reaches argument {i}: is something detached or converted to an integer?",
                  hint)
        if not torch.allclose(g_l, g_r, atol=atol, rtol=rtol):
            _fail(name, f"the values are right but the gradient with respect to argument {i} is wrong "
                        f"(largest error {(g_l - g_r).abs().max().item():.4g}).", hint)


# Lesson-specific graders follow, one section per lesson; each is a thin wrapper around check_function.


# --- lesson 01 ---
def reference_resize_frame(frame: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-average downsampling by an integer factor: uint8 (H, W, C) -> float (H / factor, W / factor, C).

    Each output pixel is the mean of a factor x factor block (no rounding). For integer factors this is what
    PIL's BOX filter (used by `envs.ResizeObservation`) computes before rounding to uint8.
    """
    h, w, c = frame.shape
    return frame.float().reshape(h // factor, factor, w // factor, factor, c).mean((1, 3))


def check_resize_frame(fn: Callable) -> None:
    def make_inputs(g):
        factor = [2, 3, 4][int(torch.randint(0, 3, (1,), generator=g))]
        frame = torch.randint(0, 256, (96, 96, 3), generator=g, dtype=torch.uint8)
        frame[40:60, :, 1] = 255  # a bright horizontal stripe whose edge falls inside blocks for factor 3
        return frame, factor
    check_function(fn, reference_resize_frame, make_inputs, name="resize_frame", trials=6, atol=1e-3,
                   hint="(H, W, 3) uint8 -> (H / f, W / f, 3) float: every output pixel is the mean of one f x f "
                   "block of input pixels, per channel; convert to float before averaging and do not round")


def reference_carracing_action(action: torch.Tensor) -> torch.Tensor:
    """Policy action in [-1, 1]^3 (clipped) -> CarRacing's (steer in [-1, 1], gas in [0, 1], brake in [0, 1])."""
    a = action.clamp(-1, 1)
    return torch.stack([a[..., 0], (a[..., 1] + 1) / 2, (a[..., 2] + 1) / 2], -1)


def reference_discounted_return(reward: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = r_t + gamma R_{t+1} over the last axis (R after the last step is 0)."""
    out, running = torch.zeros_like(reward), torch.zeros_like(reward[..., 0])
    for t in reversed(range(reward.shape[-1])):
        running = reward[..., t] + gamma * running
        out[..., t] = running
    return out


def check_carracing_action(fn: Callable) -> None:
    check_function(fn, reference_carracing_action, lambda g: (torch.randn(16, 3, generator=g) * 1.5,),
                   name="carracing_action", hint="steer keeps its range; gas and brake map [-1, 1] linearly onto "
                   "[0, 1]; clip the policy's action to [-1, 1] first")


def check_discounted_return(fn: Callable) -> None:
    def make_inputs(g):
        return torch.randn(4, 20, generator=g), float(torch.rand(1, generator=g) * 0.5 + 0.5)
    check_function(fn, reference_discounted_return, make_inputs, name="discounted_return",
                   hint="work backwards from the last step; the return after the last step is 0")


# --- lesson 02 ---
def check_preprocess(fn: Callable) -> None:
    from .networks import preprocess

    check_function(fn, preprocess, lambda g: (torch.randint(0, 256, (2, 5, 64, 64, 3), generator=g,
                                                            dtype=torch.uint8),),
                   name="preprocess", hint="(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-0.5, 0.5]: divide "
                   "by 255, subtract 0.5, move the channel axis")


def check_image_nll(fn: Callable) -> None:
    from .networks import normal_nll

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
        try:
            got = fn(size, kernel, stride, transposed=transposed)
        except NotImplementedError:
            _fail(name, "not implemented yet: replace the `raise NotImplementedError` with your code.", hint)
        except Exception as error:
            _fail(name, f"your function raised {type(error).__name__}: {error} (for {args})", hint)
        if got != reference_conv_output_size(size, kernel, stride, transposed):
            _fail(name, f"wrong value {got!r} for {args}.", hint)
    print(f"✅ {name}: correct on {len(cases)} cases (convolutions and transposed convolutions)")


# --- lesson 03 ---
def reference_straight_through(logits: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    probs = torch.softmax(logits, -1)
    return sample + (probs - probs.detach())  # parenthesised: exactly the one-hot in the forward pass


def check_straight_through(fn: Callable) -> None:
    def make_inputs(g):
        logits = torch.randn(8, 32, 32, generator=g)
        index = torch.multinomial(torch.softmax(logits, -1).flatten(0, 1), 1, generator=g).view(8, 32)
        return logits, torch.nn.functional.one_hot(index, 32).float()
    check_function(fn, reference_straight_through, make_inputs, name="straight_through", grad_inputs=(0,),
                   hint="the forward value must be exactly the one-hot sample; the gradient must be that of the "
                   "class probabilities softmax(logits)")


def check_kl_balance(fn: Callable) -> None:
    from .world_model import categorical_kl, kl_balance

    def make_inputs(g):
        # Sharpness varies across the batch, so the per-sample KLs range from ~0.1 to ~30 nats; the free nats lie
        # below or above the batch-mean KL (then the loss is constant and sends no gradient) depending on the trial.
        scale = torch.linspace(0.1, 1.5, 6)[:, None, None]
        post, prior = torch.randn(6, 32, 32, generator=g) * scale, torch.randn(6, 32, 32, generator=g) * scale
        mean_kl = categorical_kl(post, prior).mean().item()
        balance = round(float(torch.rand(1, generator=g)) * 0.8 + 0.1, 3)
        free = round(mean_kl * (0.5 if torch.rand(1, generator=g) < 0.6 else 1.3), 3)
        return post, prior, balance, free
    check_function(fn, lambda post, prior, balance, free: kl_balance(post, prior, balance, free)[0], make_inputs,
                   name="kl_balance", grad_inputs=(0, 1), trials=6,
                   hint="KL summed over the 32 latents and averaged over the batch; balance weights the term where "
                   "the posterior is detached; free nats clamp each term from below after averaging")


def check_categorical_kl(fn: Callable) -> None:
    from .world_model import categorical_kl

    def make_inputs(g):
        return torch.randn(6, 32, 32, generator=g) * 2, torch.randn(6, 32, 32, generator=g) * 2
    check_function(fn, categorical_kl, make_inputs, name="categorical_kl", grad_inputs=(0, 1),
                   hint="KL(P || Q) = sum_c p_c (log p_c - log q_c) with P from the FIRST argument; use log_softmax "
                   "for the log-probabilities; sum over the classes and over the 32 variables: one value per sample")


# --- lesson 04 ---
def reference_discount_nll(logits: torch.Tensor, is_terminal: torch.Tensor) -> torch.Tensor:
    from .networks import bernoulli_nll

    return bernoulli_nll(logits, 1.0 - is_terminal.float()).mean()


def reference_replay_rows(actions: torch.Tensor, rewards: torch.Tensor, terminated: bool):
    """An episode x_0, a_1, (x_1, r_1), ..., (x_T, r_T) -> its T + 1 replay rows (action, reward, is_first,
    is_terminal): action[t] led to x_t, reward[t] came with x_t, the reset frame x_0 has neither."""
    zero_action, zero_reward = torch.zeros_like(actions[:1]), torch.zeros_like(rewards[:1])
    is_first = torch.zeros(len(rewards) + 1, dtype=torch.bool)
    is_first[0] = True
    is_terminal = torch.zeros(len(rewards) + 1, dtype=torch.bool)
    is_terminal[-1] = bool(terminated)
    return torch.cat([zero_action, actions]), torch.cat([zero_reward, rewards]), is_first, is_terminal


def check_discount_nll(fn: Callable) -> None:
    def make_inputs(g):
        return torch.randn(4, 16, generator=g), torch.rand(4, 16, generator=g) < 0.2
    check_function(fn, reference_discount_nll, make_inputs, name="discount_nll", grad_inputs=(0,),
                   hint="the target is the continuation flag 1 - is_terminal; binary cross-entropy on logits, "
                   "averaged over all steps")


def check_replay_rows(fn: Callable) -> None:
    def make_inputs(g):
        t = int(torch.randint(3, 12, (1,), generator=g))
        terminated = bool(torch.randint(0, 2, (1,), generator=g))  # the fixed seed gives both endings in 4 trials
        return torch.randn(t, 3, generator=g), torch.randn(t, generator=g), terminated
    check_function(fn, reference_replay_rows, make_inputs, name="replay_rows", trials=4,
                   hint="one row per frame, T + 1 rows; the first frame comes from reset, so no action led to it "
                   "and no reward came with it; is_terminal marks the last frame only if the episode terminated "
                   "(a time limit is not a termination)")


# --- lesson 05 ---
def reference_discount_weights(start_cont: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
    """Weights of the H imagined steps: the probability (times gamma^t) that the episode is still running."""
    return torch.cumprod(torch.cat([start_cont[None], discount[:-1]], 0), 0)


def check_lambda_return(fn: Callable) -> None:
    from .behavior import lambda_return

    def make_inputs(g):
        h, n = 15, 6
        lambda_ = round(float(torch.rand(1, generator=g)) * 0.9 + 0.05, 3)
        return (torch.randn(h, n, generator=g), torch.randn(h, n, generator=g),
                0.99 * (torch.rand(h, n, generator=g) > 0.1).float(), torch.randn(n, generator=g), lambda_)
    check_function(fn, lambda_return, make_inputs, name="lambda_return", grad_inputs=(0, 1, 3), trials=4,
                   hint="R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}), computed backwards from "
                   "R_H = v_H = bootstrap")


def check_discount_weights(fn: Callable) -> None:
    def make_inputs(g):
        return (torch.rand(8, generator=g) > 0.2).float(), 0.99 * torch.rand(15, 8, generator=g)
    check_function(fn, reference_discount_weights, make_inputs, name="discount_weights",
                   hint="the first imagined step is the real start state: weight = its continuation flag; each "
                   "later step multiplies by the discount predicted for the step before it")


class _GivenDist:
    """Stands in for an action distribution whose log-probabilities and entropies are already computed."""

    def __init__(self, log_prob: torch.Tensor, entropy: torch.Tensor):
        self._log_prob, self._entropy = log_prob, entropy

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self._log_prob

    def entropy(self) -> torch.Tensor:
        return self._entropy


def reference_reinforce_loss(log_prob: torch.Tensor, returns: torch.Tensor, baseline: torch.Tensor,
                             entropy: torch.Tensor, weight: torch.Tensor, entropy_scale: float) -> torch.Tensor:
    """behavior.actor_loss for discrete actions (pure REINFORCE, rho = 1)."""
    from .behavior import actor_loss

    dist = _GivenDist(log_prob, entropy)
    return actor_loss(dist, torch.zeros_like(log_prob), returns, baseline, weight, 1.0, entropy_scale)[0]


def check_reinforce_loss(fn: Callable) -> None:
    name = "reinforce_loss"
    hint = ("loss = -mean(w * (log_prob * advantage + eta * entropy)) with the advantage R - v held constant "
            "(stop-gradient): only the log-probabilities and the entropy train the actor")

    def make_inputs(g):
        h, n = 15, 8
        return (-torch.rand(h, n, generator=g) * 3, torch.randn(h, n, generator=g), torch.randn(h, n, generator=g),
                torch.rand(h, n, generator=g) * 1.6, torch.rand(h, n, generator=g),
                float(torch.rand(1, generator=g)) * 0.1 + 0.01)

    # The reference sends no gradient at all into the returns and the baseline, which check_function skips, so
    # test that stop-gradient here: a learner's loss must not depend on them through the autograd graph.
    args = list(make_inputs(torch.Generator().manual_seed(1)))
    args[1], args[2] = args[1].requires_grad_(True), args[2].requires_grad_(True)
    try:
        out = fn(*args)
    except Exception:  # check_function below reports it (not implemented, or the error)
        out = None
    if torch.is_tensor(out) and out.requires_grad and out.numel() == 1:
        leaks = [g for g in torch.autograd.grad(out.sum(), args[1:3], allow_unused=True)
                 if g is not None and g.abs().max() > 0]
        if leaks:
            _fail(name, "a gradient flows into the returns or the baseline (arguments 1 and 2): the actor must "
                        "treat the advantage as a constant.", hint)
    check_function(fn, reference_reinforce_loss, make_inputs, name=name, grad_inputs=(0, 3, 4), hint=hint)


# --- lesson 06 ---
def reference_disagreement(predictions: torch.Tensor) -> torch.Tensor:
    """Plan2Explore: (K, N, D) member predictions -> (N,) population variance over K, mean over D."""
    return predictions.var(0, unbiased=False).mean(-1)


def reference_transition_pairs(feat: torch.Tensor, action: torch.Tensor, stoch: torch.Tensor,
                               is_first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training pairs of the intrinsic predictors from a replay window (B, T): inputs [s_t, a_{t+1}] (the action
    stored in row t + 1 is the one taken in state t), targets flatten(z_{t+1}), and a mask that drops the pairs
    whose second row starts a new episode. Shapes (B, T - 1, F + A), (B, T - 1, S * C), (B, T - 1)."""
    inputs = torch.cat([feat[:, :-1], action[:, 1:]], -1)
    return inputs, stoch[:, 1:].flatten(-2), (~is_first[:, 1:].bool()).float()


def check_transition_pairs(fn: Callable) -> None:
    def make_inputs(g):
        b, t, s, c = 4, 10, 4, 5
        stoch = torch.nn.functional.one_hot(torch.randint(0, c, (b, t, s), generator=g), c).float()
        return (torch.randn(b, t, 20, generator=g), torch.randn(b, t, 3, generator=g), stoch,
                torch.rand(b, t, generator=g) < 0.2)
    check_function(fn, reference_transition_pairs, make_inputs, name="transition_pairs",
                   hint="row t + 1 of the replay holds the action that LED TO x_{t+1}, i.e. the one taken in state "
                   "t; predict row t + 1's latent (flattened) from row t's features and that action; a pair is "
                   "invalid when row t + 1 starts a new episode")


def reference_curiosity_reward(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean(-1)


def check_disagreement(fn: Callable) -> None:
    check_function(fn, reference_disagreement, lambda g: (torch.randn(10, 32, 64, generator=g),),
                   name="disagreement", hint="variance across the ensemble members (axis 0, population variance), "
                   "then the mean over the predicted dimensions: one number per sample")


def check_curiosity_reward(fn: Callable) -> None:
    check_function(fn, reference_curiosity_reward,
                   lambda g: (torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)),
                   name="curiosity_reward", hint="one reward PER SAMPLE: squared error averaged over the latent "
                   "dimensions only (this is exactly the seed notebook's shape bug)")


# --- lesson 07 ---
def reference_greedy_action(logits: torch.Tensor) -> torch.Tensor:
    from .behavior import OneHotCategorical

    return OneHotCategorical(logits).mode()


def reference_reset_state(deter: torch.Tensor, stoch: torch.Tensor, is_first: torch.Tensor):
    keep = (~is_first).float()
    return deter * keep[:, None], stoch * keep[:, None, None]


def check_greedy_action(fn: Callable) -> None:
    check_function(fn, reference_greedy_action, lambda g: (torch.randn(16, 5, generator=g),),
                   name="greedy_action", hint="evaluation acts with the mode: a one-hot vector (float) of the most "
                   "likely action, same shape as the logits")


def check_reset_state(fn: Callable) -> None:
    def make_inputs(g):
        return (torch.randn(6, 32, generator=g), torch.rand(6, 8, 8, generator=g),
                torch.rand(6, generator=g) < 0.5)
    check_function(fn, reference_reset_state, make_inputs, name="reset_state",
                   hint="rows where a new episode starts go back to the all-zero initial state; other rows keep "
                   "their state unchanged")


# --- lesson 08 ---
def reference_num_updates(steps: int, prefill: int, train_every: int) -> int:
    """Gradient updates that `train()` makes: one per `train_every` policy steps once `prefill` is collected."""
    return max(0, (steps - prefill) // train_every)


def reference_replay_bytes(capacity: int, image_size: int, action_dim: int) -> int:
    return capacity * (image_size * image_size * 3 + 4 * action_dim + 4 + 2)


def reference_episode_returns(reward: torch.Tensor, is_first: torch.Tensor) -> torch.Tensor:
    starts = torch.nonzero(is_first).flatten().tolist()
    return torch.stack([reward[a:b].sum() for a, b in zip(starts, starts[1:])]) if len(starts) > 1 else \
        reward.new_zeros(0)


def _integer_check(learner: Callable, reference: Callable, cases: Sequence[tuple], name: str, hint: str) -> None:
    for args in cases:
        try:
            got = learner(*args)
        except NotImplementedError:
            _fail(name, "not implemented yet: replace the `raise NotImplementedError` with your code.", hint)
        if got != reference(*args):
            _fail(name, f"wrong result for arguments {args}.", hint)
    print(f"✅ {name}: correct on {len(cases)} cases")


def check_num_updates(fn: Callable) -> None:
    cases = [(100_000, 5_000, 16), (1_000, 200, 10), (500, 500, 5), (100, 200, 10), (1_234, 34, 7)]
    _integer_check(fn, reference_num_updates, cases, "num_updates",
                   "no updates before prefill; count whole multiples of train_every after it")


def check_replay_bytes(fn: Callable) -> None:
    cases = [(1_000, 64, 3), (200_000, 64, 3), (10, 32, 6), (1, 64, 18)]
    _integer_check(fn, reference_replay_bytes, cases, "replay_bytes",
                   "3 bytes per pixel (uint8 RGB), 4 bytes per float32, 1 byte per bool")


def check_episode_returns(fn: Callable) -> None:
    def make_inputs(g):
        n = int(torch.randint(20, 60, (1,), generator=g))
        is_first = torch.rand(n, generator=g) < 0.15
        is_first[0] = True
        reward = torch.randn(n, generator=g) * torch.logical_not(is_first)
        return reward, is_first

    check_function(fn, reference_episode_returns, make_inputs, name="episode_returns", trials=5,
                   hint="an episode runs from one is_first row up to (not including) the next; the last, "
                        "unfinished one does not count")
