"""Lesson 02 graders: they accept independent correct answers and reject plausible mistakes with a useful message."""

import pytest
import torch

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed
from dreamer_tutorial.networks import normal_nll, preprocess


def stub(*args, **kwargs):
    raise NotImplementedError


def test_preprocess_grader():
    checks.check_preprocess(preprocess)
    checks.check_preprocess(lambda o: (o.float() / 255 - 0.5).movedim(-1, -3))
    checks.check_preprocess(lambda o: o.permute(*range(o.dim() - 3), -1, -3, -2).double() / 255.0 - 0.5)
    with pytest.raises(CheckFailed, match="values"):  # transpose swaps H and W as well
        checks.check_preprocess(lambda o: (o.float() / 255 - 0.5).transpose(-1, -3))
    with pytest.raises(CheckFailed, match="values"):  # [0, 1] instead of [-0.5, 0.5]
        checks.check_preprocess(lambda o: o.float().movedim(-1, -3) / 255)
    with pytest.raises(CheckFailed, match="shape"):  # forgets to move the channel axis
        checks.check_preprocess(lambda o: o.float() / 255 - 0.5)
    with pytest.raises(CheckFailed, match="raised"):  # only handles a single batch axis
        checks.check_preprocess(lambda o: (o.float() / 255 - 0.5).permute(0, 3, 1, 2))
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_preprocess(stub)


def test_image_nll_grader():
    checks.check_image_nll(lambda m, x: normal_nll(m, x, event_dims=3))
    checks.check_image_nll(lambda m, x: ((x - m) ** 2).sum((1, 2, 3)) / 2)
    checks.check_image_nll(lambda m, x: -torch.distributions.Normal(m, 1.0).log_prob(x).sum((1, 2, 3))
                           - 0.5 * torch.log(torch.tensor(2 * torch.pi)) * 3 * 64 * 64)
    with pytest.raises(CheckFailed, match="values"):  # mean over the pixels instead of the sum
        checks.check_image_nll(lambda m, x: ((x - m) ** 2).mean((1, 2, 3)) / 2)
    with pytest.raises(CheckFailed, match="values"):  # keeps the constant
        checks.check_image_nll(lambda m, x: -torch.distributions.Normal(m, 1.0).log_prob(x).sum((1, 2, 3)))
    with pytest.raises(CheckFailed, match="shape"):  # one number for the whole batch
        checks.check_image_nll(lambda m, x: ((x - m) ** 2).sum() / 2)
    with pytest.raises(CheckFailed, match="gradient"):  # mean detached: no learning signal
        checks.check_image_nll(lambda m, x: ((x - m.detach()) ** 2).sum((1, 2, 3)) / 2)
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_image_nll(stub)


def test_conv_output_size_grader():
    checks.check_conv_output_size(checks.reference_conv_output_size)

    def via_torch(size, kernel, stride, transposed=False):
        layer = (torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d)(1, 1, kernel, stride)
        return layer(torch.zeros(1, 1, size, size)).shape[-1]

    checks.check_conv_output_size(via_torch)
    with pytest.raises(CheckFailed, match="wrong value"):  # forgets the floor: 13.5 + 1
        checks.check_conv_output_size(lambda n, k, s, transposed=False: (n - 1) * s + k if transposed
                                      else (n - k) / s + 1)
    with pytest.raises(CheckFailed, match="wrong value"):  # "same"-padding formula
        checks.check_conv_output_size(lambda n, k, s, transposed=False: n * s if transposed else -(-n // s))
    with pytest.raises(CheckFailed, match="wrong value"):  # transposed case not handled
        checks.check_conv_output_size(lambda n, k, s, transposed=False: (n - k) // s + 1)
    with pytest.raises(CheckFailed, match="not implemented"):
        checks.check_conv_output_size(stub)
