"""Replay one evaluation episode with the posterior sampled and on its mode, and show where the two drivers part.

    python results/carracing/latent_gap.py LOGDIR --seed S [--out latent_gap.png] [--best]

The sampled replay is exactly the episode of report.py's table on env seed S (torch seeded with S, one env); the
mode replay drives the same track with `latent_mode`. At every step of the sampled replay the script also asks
the actor what it would do at the same h_t with z_t at the posterior's mode (no random draw, so the replay is
unchanged): the gap between the two steering commands, and in how many of the `stoch` categoricals (16 in the
CarRacing recipes) the sample left the most likely class, show whether a failure starts at a sample the posterior
gave little weight. Prints the two returns and the steps with the largest steering gap; draws steering,
categoricals off the mode and the running return of both replays.
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dreamer_tutorial.train import evaluate, load_agent, make_vector_env  # noqa: E402


class Recorder:
    """The agent, acting as `evaluate` asks (sampled z_t, or its mode with `latent_mode`), that also records each
    step's action, the action at the posterior's mode for the same h_t, and the categoricals off their mode."""

    def __init__(self, agent, latent_mode: bool):
        self.agent, self.latent_mode = agent, latent_mode
        self.actions, self.mode_actions, self.off_mode = [], [], []

    def __getattr__(self, name):  # training, eval(), train(), discrete: the agent's
        return getattr(self.agent, name)

    def policy(self, obs, state=None, **kwargs):
        actions, state = self.agent.policy(obs, state, latent_mode=self.latent_mode, **kwargs)
        latent = state[0]
        mode = latent.at_mode()
        mode_action = self.agent.task_behavior.actor(mode.feat).mode()
        self.actions.append(actions[0])
        self.mode_actions.append(mode_action[0].detach().cpu().numpy())
        self.off_mode.append(int((latent.stoch != mode.stoch).any(-1).sum()))
        return actions, state


def replay(agent, config, seed: int, latent_mode: bool) -> tuple[Recorder, np.ndarray]:
    """One episode on env seed `seed`, seeded as evaluate_episodes seeds it; returns the recorder and the rewards."""
    recorder, rewards = Recorder(agent, latent_mode), []
    envs = make_vector_env(config, num_envs=1)
    step = envs.step

    def recorded_step(actions):
        result = step(actions)
        rewards.append(float(result[1][0]))
        return result

    envs.step = recorded_step
    torch.manual_seed(seed)
    evaluate(recorder, envs, 1, seed=seed)
    envs.close()
    return recorder, np.array(rewards)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("--seed", type=int, required=True, help="the env seed of the episode (report.py's table)")
    parser.add_argument("--out", default="latent_gap.png")
    parser.add_argument("--best", action="store_true", help="the run's best.pt instead of latest.pt")
    args = parser.parse_args(argv)
    agent, config = load_agent(args.logdir, best=args.best)
    sampled, sampled_rewards = replay(agent, config, args.seed, latent_mode=False)
    moded, mode_rewards = replay(agent, config, args.seed, latent_mode=True)
    steer, steer_at_mode = np.array(sampled.actions)[:, 0], np.array(sampled.mode_actions)[:, 0]
    gap = np.abs(steer - steer_at_mode)
    print(f"env seed {args.seed}: sampled z_t {sampled_rewards.sum():.1f}, z_t at its mode {mode_rewards.sum():.1f}")
    print(f"sampled replay, {len(gap)} steps: categoricals off their mode {np.mean(sampled.off_mode):.1f} of "
          f"{agent.config.stoch} on average; steering gap to the mode's action: mean {gap.mean():.3f}, "
          f"above 0.5 on {(gap > 0.5).sum()} steps")
    for t in np.argsort(gap)[::-1][:5]:
        print(f"  step {t}: steer {steer[t]:+.2f} (at the mode {steer_at_mode[t]:+.2f}), {sampled.off_mode[t]} "
              f"categoricals off the mode, return so far {sampled_rewards[:t].sum():.1f}")
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    axes[0].plot(steer, lw=0.8, label="steering taken (sampled z_t)")
    axes[0].plot(steer_at_mode, lw=0.8, label="actor at the same h_t, z_t at its mode")
    axes[0].set_ylabel("steering")
    axes[0].legend(loc="lower left", fontsize=8)
    axes[1].plot(sampled.off_mode, lw=0.8, color="tab:red")
    axes[1].set_ylabel(f"categoricals off\ntheir mode (of {agent.config.stoch})")
    axes[2].plot(np.cumsum(sampled_rewards), label=f"sampled z_t: {sampled_rewards.sum():.1f}")
    axes[2].plot(np.cumsum(mode_rewards), label=f"z_t at its mode: {mode_rewards.sum():.1f}")
    axes[2].set_ylabel("return so far")
    axes[2].set_xlabel("policy step (2 frames each)")
    axes[2].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"CarRacing-v3, env seed {args.seed}: the same agent, the posterior sampled or at its mode")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
