"""Graders for the lessons' exercises, one module per lesson (`lesson01` ... `lesson08`) on a shared core.

Each `check_*` function takes the learner's function, runs it and a reference on a few random inputs, and either
prints one success line (`passed`: which code was graded) or raises `CheckFailed` with what is wrong (not
implemented yet, an exception, the shape, the values, the sign, an off-by-one, a gradient) and a hint. Messages
never print the reference's outputs, only where and by how much the learner's differ, so they help without giving
the answer away. The comparison only looks at inputs and outputs, so any correct implementation passes, not just
the package's. `show_solution("<exercise>")` prints the reference solution for learners studying alone.
"""

from ._core import CheckFailed, check_function, graded, passed, show_solution
from .lesson01 import (
    check_carracing_action,
    check_discounted_return,
    check_resize_frame,
    reference_carracing_action,
    reference_discounted_return,
    reference_resize_frame,
)
from .lesson02 import (
    check_conv_output_size,
    check_decoder,
    check_encoder,
    check_image_nll,
    check_preprocess,
    reference_conv_output_size,
)
from .lesson03 import (
    check_categorical_kl,
    check_img_step,
    check_kl_balance,
    check_obs_step,
    check_straight_through,
    reference_img_step,
    reference_obs_step,
    reference_straight_through,
)
from .lesson04 import (
    check_discount_nll,
    check_replay_rows,
    check_world_model_loss,
    reference_discount_nll,
    reference_replay_rows,
    reference_world_model_loss,
)
from .lesson05 import (
    check_actor_critic_update,
    check_discount_weights,
    check_lambda_return,
    check_reinforce_loss,
    reference_actor_critic_update,
    reference_discount_weights,
    reference_reinforce_loss,
)
from .lesson06 import (
    check_curiosity_reward,
    check_disagreement,
    check_transition_pairs,
    reference_curiosity_reward,
    reference_disagreement,
    reference_transition_pairs,
)
from .lesson07 import (
    check_greedy_action,
    check_learning,
    check_policy,
    check_reset_state,
    check_train_step,
    reference_greedy_action,
    reference_policy,
    reference_reset_state,
    reference_train_step,
)
from .lesson08 import (
    check_episode_returns,
    check_num_updates,
    check_replay_bytes,
    reference_episode_returns,
    reference_num_updates,
    reference_replay_bytes,
)

__all__ = [
    "CheckFailed",
    "check_function",
    "graded",
    "passed",
    "show_solution",
    "check_carracing_action",
    "check_discounted_return",
    "check_resize_frame",
    "reference_carracing_action",
    "reference_discounted_return",
    "reference_resize_frame",
    "check_conv_output_size",
    "check_decoder",
    "check_encoder",
    "check_image_nll",
    "check_preprocess",
    "reference_conv_output_size",
    "check_categorical_kl",
    "check_img_step",
    "check_obs_step",
    "reference_img_step",
    "reference_obs_step",
    "check_kl_balance",
    "check_straight_through",
    "reference_straight_through",
    "check_discount_nll",
    "check_replay_rows",
    "reference_discount_nll",
    "reference_replay_rows",
    "check_world_model_loss",
    "reference_world_model_loss",
    "check_discount_weights",
    "check_lambda_return",
    "check_reinforce_loss",
    "reference_discount_weights",
    "reference_reinforce_loss",
    "check_actor_critic_update",
    "reference_actor_critic_update",
    "check_curiosity_reward",
    "check_disagreement",
    "check_transition_pairs",
    "reference_curiosity_reward",
    "reference_disagreement",
    "reference_transition_pairs",
    "check_greedy_action",
    "check_reset_state",
    "reference_greedy_action",
    "reference_reset_state",
    "check_learning",
    "check_policy",
    "check_train_step",
    "reference_policy",
    "reference_train_step",
    "check_episode_returns",
    "check_num_updates",
    "check_replay_bytes",
    "reference_episode_returns",
    "reference_num_updates",
    "reference_replay_bytes",
]
