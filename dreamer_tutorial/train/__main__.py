"""Command line: python -m dreamer_tutorial.train --preset carracing [--steps N] [--logdir D] [--resume] ...

Every Config field is an option (`--help` lists them with their meaning); the preset gives the defaults.
`--logdir D --resume` alone continues the run in D with the config saved in its checkpoint; options given
with it (e.g. `--steps 100000`) override the saved values, and `--preset P` starts from that preset instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ..config import Config
from . import has_checkpoint, resume_config, train


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dreamer_tutorial.train", description="Train DreamerV2 from pixels.",
        usage="%(prog)s [--preset NAME] [--steps N] [--logdir DIR] [--seed S] [--resume] [--FIELD VALUE ...]",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default=None,
                        help="named config (see Config.preset; default carracing, or with --resume the config saved "
                             "in the run's checkpoint); the options below override it")
    parser.add_argument("--resume", action="store_true", help="continue the run in --logdir from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    group = parser.add_argument_group("config fields (default: the preset's value)")
    for field in dataclasses.fields(Config):
        type_name = field.type if isinstance(field.type, str) else field.type.__name__
        kind = {"bool": _parse_bool, "int": int, "float": float}.get(type_name, str)
        group.add_argument(f"--{field.name}", type=kind, default=None, help=field.metadata.get("help", ""))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}
    from_checkpoint = (args.resume and args.preset is None and args.logdir is not None
                       and has_checkpoint(args.logdir))
    try:
        if from_checkpoint:
            config = resume_config(args.logdir, overrides)
        else:
            config = Config.preset(args.preset or "carracing", **overrides)
    except ValueError as error:
        parser.error(str(error))
    try:
        result = train(config, resume=args.resume, progress=not args.no_progress)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"eval return {result['eval_return']:.1f} ± {result['eval_std']:.1f} over {len(result['eval_returns'])} "
          f"episodes after {result['steps']} steps and {result['updates']} updates; logs in {result['logdir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
