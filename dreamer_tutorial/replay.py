"""Sequence replay: frames stored as uint8, sampled as (B, T) windows for the world model.

Alignment convention (the same as the RSSM's). Row t of a stream holds

    obs[t]          the frame x_t (uint8, H x W x 3)
    action[t]       the action a_t that LED TO x_t (zeros on the first step of an episode)
    reward[t]       the reward r_t received together with x_t (0 on the first step)
    is_first[t]     True when x_t is the first frame of an episode (from `reset`)
    is_terminal[t]  True when x_t is a terminal frame (the episode ended, not a time-limit truncation)

so one environment step `x_{t+1}, r_{t+1} = env.step(a_{t+1})` adds the row (x_{t+1}, a_{t+1}, r_{t+1}, False,
terminated). Each parallel environment writes its own stream (a ring buffer). A sampled window is a contiguous
slice of one stream, so it may cross from the end of one episode into the next only through a row with
is_first = True, where the RSSM resets its state. A window never wraps across the ring's write position, where
the newest and the oldest rows meet.

Memory: H*W*3 bytes per frame plus 4 * (A + 1) + 2 bytes, i.e. about 12.3 KB per 64x64 step with 3 actions.
"""

from __future__ import annotations

import numpy as np
import torch


class SequenceReplay:
    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_dim: int, num_streams: int = 1,
                 seed: int = 0):
        if capacity < num_streams:
            raise ValueError(f"capacity ({capacity}) must be at least num_streams ({num_streams})")
        if len(obs_shape) != 3 or obs_shape[-1] != 3:
            raise ValueError(f"obs_shape must be (H, W, 3), got {obs_shape}")
        self.obs_shape, self.action_dim, self.num_streams = tuple(obs_shape), action_dim, num_streams
        self.stream_capacity = capacity // num_streams
        n, cap = num_streams, self.stream_capacity
        self.obs = np.zeros((n, cap, *obs_shape), np.uint8)
        self.action = np.zeros((n, cap, action_dim), np.float32)
        self.reward = np.zeros((n, cap), np.float32)
        self.is_first = np.zeros((n, cap), bool)
        self.is_terminal = np.zeros((n, cap), bool)
        self.pos = np.zeros(n, np.int64)  # next row to write, per stream
        self.filled = np.zeros(n, np.int64)  # rows written so far (up to capacity), per stream
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(self.filled.sum())

    @property
    def bytes_per_step(self) -> float:
        arrays = (self.obs, self.action, self.reward, self.is_first, self.is_terminal)
        return sum(a.nbytes for a in arrays) / (self.num_streams * self.stream_capacity)

    def add(self, obs, action, reward, is_first, is_terminal) -> None:
        """Add one row to every stream: obs (N, H, W, 3) uint8, action (N, A), reward/is_first/is_terminal (N,).

        With a single stream the leading N = 1 axis may be omitted.
        """
        obs = np.asarray(obs)
        if obs.dtype != np.uint8:
            raise TypeError(f"replay stores uint8 frames, got dtype {obs.dtype}; do not convert frames to float")
        if obs.shape == self.obs_shape:
            obs = obs[None]
        if obs.shape != (self.num_streams, *self.obs_shape):
            raise ValueError(f"obs must have shape {(self.num_streams, *self.obs_shape)} "
                             f"(num_streams, H, W, 3), got {obs.shape}")
        n = self.num_streams
        action = np.asarray(action, np.float32).reshape(n, self.action_dim)
        rows = np.arange(n), self.pos
        self.obs[rows] = obs
        self.action[rows] = action
        self.reward[rows] = np.asarray(reward, np.float32).reshape(n)
        self.is_first[rows] = np.asarray(is_first, bool).reshape(n)
        self.is_terminal[rows] = np.asarray(is_terminal, bool).reshape(n)
        self.pos = (self.pos + 1) % self.stream_capacity
        self.filled = np.minimum(self.filled + 1, self.stream_capacity)

    def can_sample(self, length: int) -> bool:
        return bool((self.filled >= length).any())

    def sample(self, batch_size: int, length: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """B windows of T consecutive rows, batch-major tensors: obs (B, T, H, W, 3) uint8, action (B, T, A),
        reward (B, T), is_first (B, T), is_terminal (B, T). The first row of every window is marked is_first,
        because the model starts each window from the zero state."""
        if not self.can_sample(length):
            raise ValueError(f"no stream holds {length} steps yet (filled: {self.filled.tolist()})")
        streams = self.rng.choice(np.flatnonzero(self.filled >= length), batch_size)
        # Offsets are counted from the oldest row of each stream so a window never crosses the write position.
        oldest = np.where(self.filled == self.stream_capacity, self.pos, 0)[streams]
        offsets = self.rng.integers(0, self.filled[streams] - length + 1)
        index = (oldest[:, None] + offsets[:, None] + np.arange(length)) % self.stream_capacity
        rows = streams[:, None], index
        is_first = self.is_first[rows].copy()
        is_first[:, 0] = True
        batch = {"obs": self.obs[rows], "action": self.action[rows], "reward": self.reward[rows],
                 "is_first": is_first, "is_terminal": self.is_terminal[rows]}
        return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where we were (contents, write positions, RNG), as tensors so
        that `torch.load(weights_only=True)` can read it back."""
        n = int(self.filled.max())  # only rows that were written
        arrays = {key: torch.from_numpy(getattr(self, key)[:, :n].copy()) for key in self._ARRAYS}
        return {**arrays, "pos": torch.from_numpy(self.pos.copy()), "filled": torch.from_numpy(self.filled.copy()),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        n = int(state["filled"].max())
        if state["obs"].shape[0] != self.num_streams or n > self.stream_capacity:
            raise ValueError("replay state does not fit this buffer (different num_streams or capacity)")
        for key in self._ARRAYS:
            getattr(self, key)[:, :n] = np.asarray(state[key])
        self.pos, self.filled = np.asarray(state["pos"]).copy(), np.asarray(state["filled"]).copy()
        self.rng.bit_generator.state = state["rng"]

    _ARRAYS = ("obs", "action", "reward", "is_first", "is_terminal")
