"""dreamer_tutorial: pixel-based DreamerV2, built lesson by lesson.

The public names below are the ones the notebooks import once a lesson has derived them.
"""

__version__ = "0.2.0"  # first: dreamer_tutorial.train imports it (checkpoints record it)

from . import envs  # noqa: F401  (registers dreamer_tutorial/PointReach-v0)
from .agent import Dreamer
from .behavior import ActorCritic, lambda_return
from .config import Config, quick_mode
from .envs import make_env
from .rssm import RSSM, State
from .train import evaluate, train
from .world_model import WorldModel, kl_balance

__all__ = ["Config", "quick_mode", "make_env", "RSSM", "State", "WorldModel", "kl_balance", "ActorCritic",
           "lambda_return", "Dreamer", "train", "evaluate"]

