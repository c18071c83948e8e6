"""The `taylorlens` command line: `explain` (maps of a model on a few inputs), `bench` (a benchmark config into a
resumable results store) and `report` (the store as one HTML page)."""

from __future__ import annotations

import argparse
import sys

from taylorlens.engine import AttributionInputError


def _explain(args: argparse.Namespace) -> None:
    from taylorlens.explain import explain

    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    explain(args.model, args.inputs, methods, args.out, count=args.count, device=args.device,
            normalisation=args.normalisation)


def _bench(args: argparse.Namespace) -> None:
    from taylorlens.bench import config, runner

    chosen = config.load(args.config)
    if args.scale != 1.0:
        chosen = chosen.scaled(args.scale)
    runner.run(chosen, args.out, engine=args.engine, address=args.address, show_progress=not args.no_progress)


def _report(args: argparse.Namespace) -> None:
    from taylorlens.report.html import render

    print(f"wrote {render(args.directory)}")


def parser() -> argparse.ArgumentParser:
    from taylorlens.explain import DEFAULT_INPUTS, DEFAULT_MODEL

    main = argparse.ArgumentParser(prog="taylorlens", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="attribute a model on a few inputs; write maps and a summary")
    explain.add_argument("--model", default=None,
                         help=f"zoo name, TorchScript file or module:function (default: {DEFAULT_MODEL}; "
                         "efficientnet_lite0 for photos/imagenet)")
    explain.add_argument("--inputs", default=DEFAULT_INPUTS,
                         help="digits, mnist, fashion_mnist, photos, imagenet (20 labelled ImageNet images), "
                         "a .npz (x[, y]) or an image folder")
    explain.add_argument("--methods", default=None, help="comma-separated method names (default: all maps)")
    explain.add_argument("--out", default="results/explain", help="output directory")
    explain.add_argument("--count", type=int, default=6, help="number of input samples")
    explain.add_argument("--device", default="cpu", help="cpu or cuda")
    explain.add_argument("--normalisation", choices=("signed", "absolute"), default="signed")
    explain.set_defaults(run=_explain)
    bench = commands.add_parser("bench", help="run a benchmark config into a resumable results store")
    bench.add_argument("config", help="a TOML config, e.g. benchmarks/papers/ancona_fig4.toml")
    bench.add_argument("--out", required=True, help="results directory (the store is DIR/results.sqlite)")
    bench.add_argument("--scale", type=float, default=1.0, help="multiply the number of samples")
    bench.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="where shards run: local (this process) or ray (Ray workers; pip install taylorlens[ray])")
    bench.add_argument("--address", default=None,
                       help="Ray cluster for --engine ray: auto (the one `ray start` joined here), HOST:6379 "
                       "or ray://HOST:10001; default: a new Ray instance on this machine")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.set_defaults(run=_bench)
    report = commands.add_parser("report", help="render a results directory as one self-contained HTML file")
    report.add_argument("directory", help="a directory written by `taylorlens bench`")
    report.set_defaults(run=_report)
    return main


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit with status 2."""
    from taylorlens.bench.config import ConfigError
    from taylorlens.bench.engines import EngineError
    from taylorlens.bench.store import StoreError
    from taylorlens.explain import ExplainError
    from taylorlens.zoo import MissingDataError

    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ExplainError, AttributionInputError, MissingDataError, FileNotFoundError, ConfigError,
            StoreError, EngineError) as error:
        print(f"taylorlens {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
