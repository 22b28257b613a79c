"""Lesson 02 graders: they accept independent correct answers and reject plausible mistakes with a useful message."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamer_tutorial import checks
from dreamer_tutorial.checks import CheckFailed
from dreamer_tutorial.networks import ConvDecoder, ConvEncoder, normal_nll, preprocess


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


# --- the encoder and decoder modules ------------------------------------------------------------------------------

class Encoder(nn.Module):
    """Written independently of the package: separate layers with other names, functional ELU, reshape."""

    def __init__(self, depth, act=F.elu, kernel=4, padding=0, channels=(1, 2, 4, 8), last_act=True, bias=True):
        super().__init__()
        sizes = [3] + [c * depth for c in channels]
        self.layers = nn.ModuleList(nn.Conv2d(i, o, kernel, 2, padding, bias=bias) for i, o in zip(sizes, sizes[1:]))
        self.act, self.last_act = act, last_act

    def forward(self, image):
        x = image
        for i, layer in enumerate(self.layers):
            x = layer(x)
            x = self.act(x) if self.last_act or i < 3 else x
        return x.reshape(len(image), -1)


class ChannelsLastFlatten(Encoder):
    def forward(self, image):
        return super().forward(image).view(len(image), -1, 2, 2).permute(0, 2, 3, 1).flatten(1)


class NoGradEncoder(Encoder):
    def forward(self, image):
        with torch.no_grad():
            return super().forward(image)


class Decoder(nn.Module):
    """Transposed convolutions registered BEFORE the linear layer, other names, an Unflatten module."""

    def __init__(self, feat_dim, depth, kernels=(5, 5, 6, 6), out=None, act_after_linear=False):
        super().__init__()
        sizes = [32 * depth, 4 * depth, 2 * depth, depth, 3]
        self.up = nn.ModuleList(nn.ConvTranspose2d(i, o, k, 2) for i, o, k in zip(sizes, sizes[1:], kernels))
        self.fc = nn.Linear(feat_dim, 32 * depth)
        self.unflatten = nn.Unflatten(1, (32 * depth, 1, 1))
        self.out, self.act_after_linear = out, act_after_linear

    def forward(self, feat):
        x = self.fc(feat)
        x = self.unflatten(F.elu(x) if self.act_after_linear else x)
        for i, layer in enumerate(self.up):
            x = layer(x)
            x = F.elu(x) if i < 3 else x
        return self.out(x) if self.out is not None else x


def partial(cls, **kwargs):
    return lambda *args: cls(*args, **kwargs)


def test_encoder_grader(capsys):
    checks.check_encoder(ConvEncoder)
    checks.check_encoder(Encoder)
    assert capsys.readouterr().out.splitlines() == [
        "✅ encoder passed - graded: the reference implementation (dreamer_tutorial.networks.ConvEncoder)",
        "✅ encoder passed - graded: your code (Encoder)"]
    mistakes = [
        (partial(Encoder, channels=(1, 2, 4, 4)), "convolution 4 outputs 20 channels, expected 40"),
        (partial(Encoder, channels=(1, 2, 2, 8)), "convolution 3 outputs 10 channels, expected 20"),
        (partial(Encoder, kernel=3), "convolution 2 outputs 15 x 15 maps, expected 14 x 14"),  # 64 -> 31 -> 15
        (partial(Encoder, padding=1), "convolution 1 outputs 32 x 32 maps, expected 31 x 31"),
        (partial(Encoder, last_act=False), "without the activation after convolution 4"),
        (partial(Encoder, act=F.relu), "with ReLU in place of ELU"),
        (partial(Encoder, bias=False), "expected shapes you lack: [(5,), (10,), (20,), (40,)]"),
        (ChannelsLastFlatten, "right numbers in the wrong order"),
        (NoGradEncoder, "no gradient reaches"),
        (stub, "not implemented yet"),
    ]
    for cls, message in mistakes:
        with pytest.raises(CheckFailed, match=re.escape(message)):
            checks.check_encoder(cls)


def test_decoder_grader(capsys):
    checks.check_decoder(ConvDecoder)
    checks.check_decoder(Decoder)
    assert capsys.readouterr().out.splitlines()[1] == "✅ decoder passed - graded: your code (Decoder)"
    mistakes = [
        (partial(Decoder, kernels=(5, 5, 5, 5)), "transposed convolution 3 outputs 29 x 29 maps, expected 30 x 30"),
        (partial(Decoder, out=torch.sigmoid), "with a sigmoid on the output"),
        (partial(Decoder, out=lambda x: x + 0.5), "not [0, 1]"),
        (partial(Decoder, out=lambda x: x * 255), "255 x the expected one: wrong output scaling"),
        (partial(Decoder, act_after_linear=True), "with an activation after the linear layer"),
        (stub, "not implemented yet"),
    ]
    for cls, message in mistakes:
        with pytest.raises(CheckFailed, match=re.escape(message)):
            checks.check_decoder(cls)
    wide = Decoder(37, 5)  # 8d instead of 4d channels after the first transposed convolution
    wide.up[0], wide.up[1] = nn.ConvTranspose2d(160, 40, 5, 2), nn.ConvTranspose2d(40, 10, 5, 2)
    with pytest.raises(CheckFailed, match="transposed convolution 1 outputs 40 channels, expected 20"):
        checks.check_decoder(lambda *args: wide)
