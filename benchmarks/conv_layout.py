"""Per-layer time of the encoder's and decoder's convolutions, default (NCHW) against channels-last layout.

Forward + backward of each convolution of `networks.ConvEncoder` and `networks.ConvDecoder` (the decoder's first
transposed convolution is a matrix product there, so it is left out) on a batch of B x T frames, the figures of
results/throughput.md. Run it on a quiet machine:

    python benchmarks/conv_layout.py --depth 16 --frames 256 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from dreamer_tutorial.networks import ConvDecoder, ConvEncoder


def layer_inputs(depth: int, frames: int) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """(name, layer, its input) for every convolution, inputs from running the nets on random data."""
    encoder, decoder = ConvEncoder(depth), ConvDecoder(32 * depth, depth)
    x = torch.rand(frames, 3, 64, 64) - 0.5
    out = []
    for i, layer in enumerate(encoder.convs):
        if isinstance(layer, nn.Conv2d):
            out.append((f"encoder conv {i // 2 + 1}", layer, x))
        x = layer(x).detach()
    x = torch.randn(frames, 4 * depth, 5, 5)
    for i, layer in enumerate(decoder.deconvs[1:]):
        if isinstance(layer, nn.ConvTranspose2d):
            out.append((f"decoder deconv {i // 2 + 2}", layer, x))
        x = layer(x).detach()
    return out


def time_layer(layer: nn.Module, x: torch.Tensor, layout: torch.memory_format, repeats: int) -> float:
    """Mean seconds of forward + backward (input gradient too, except for the frames)."""
    layer = layer.to(memory_format=layout)
    x = x.contiguous(memory_format=layout).requires_grad_(x.shape[1] != 3)
    for _ in range(2):
        layer(x).sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        layer(x).sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"depth {args.depth}, {args.frames} frames, {args.threads} threads, forward + backward")
    print("| layer | input | NCHW | channels-last |")
    print("| --- | --- | --- | --- |")
    for name, layer, x in layer_inputs(args.depth, args.frames):
        nchw, last = (time_layer(layer, x, f, args.repeats) for f in (torch.contiguous_format, torch.channels_last))
        print(f"| {name} | {tuple(x.shape[1:])} | {1000 * nchw:.1f} ms | {1000 * last:.1f} ms |")


if __name__ == "__main__":
    main()
