"""The `taylorlens` command line: `taylorlens explain ...` (more subcommands come with bench and report)."""

from __future__ import annotations

import argparse
import sys

from taylorlens.engine import AttributionInputError


def _explain(args: argparse.Namespace) -> None:
    from taylorlens.explain import explain

    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    explain(args.model, args.inputs, methods, args.out, count=args.count, device=args.device,
            normalisation=args.normalisation)


def parser() -> argparse.ArgumentParser:
    from taylorlens.explain import DEFAULT_INPUTS, DEFAULT_MODEL

    main = argparse.ArgumentParser(prog="taylorlens", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="attribute a model on a few inputs; write maps and a summary")
    explain.add_argument("--model", default=DEFAULT_MODEL, help="zoo name, TorchScript file or module:function")
    explain.add_argument("--inputs", default=DEFAULT_INPUTS,
                         help="digits, fashion_mnist, photos, a .npz (x[, y]) or an image folder")
    explain.add_argument("--methods", default=None, help="comma-separated method names (default: all maps)")
    explain.add_argument("--out", default="results/explain", help="output directory")
    explain.add_argument("--count", type=int, default=6, help="number of input samples")
    explain.add_argument("--device", default="cpu", help="cpu or cuda")
    explain.add_argument("--normalisation", choices=("signed", "absolute"), default="signed")
    explain.set_defaults(run=_explain)
    return main


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit with status 2."""
    from taylorlens.explain import ExplainError
    from taylorlens.zoo import MissingDataError

    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ExplainError, AttributionInputError, MissingDataError, FileNotFoundError) as error:
        print(f"taylorlens {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
