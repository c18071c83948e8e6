"""The `taylorlens` command line: `explain` (maps of a model on a few inputs; word scores of a text model on
IMDB reviews or on ``--text``), `bench` (a benchmark config into a resumable results store) and `report` (the
store as one HTML page)."""

from __future__ import annotations

import argparse
import sys

from taylorlens.engine import AttributionInputError


def _explain(args: argparse.Namespace) -> None:
    from taylorlens.explain import DEFAULT_INPUTS, ExplainError, explain
    from taylorlens.explain_text import TEXT_DATASET, explain_text, is_text_model

    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    if args.text is not None and args.inputs is not None:
        raise ExplainError(f"give --text or --inputs, not both (got --inputs {args.inputs})")
    if args.text is not None or args.inputs == TEXT_DATASET or (args.inputs is None and is_text_model(args.model)):
        explain_text(args.model, args.text, methods, args.out or "results/explain_text", count=args.count,
                     device=args.device)
        return
    if is_text_model(args.model):
        raise ExplainError(f"model {args.model!r} takes IMDB token ids; explain it with --inputs {TEXT_DATASET} "
                           f"or --text \"a sentence\", not --inputs {args.inputs}")
    explain(args.model, args.inputs or DEFAULT_INPUTS, methods, args.out or "results/explain", count=args.count,
            device=args.device, normalisation=args.normalisation)


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
    explain.add_argument("--inputs", default=None,
                         help=f"digits, mnist, fashion_mnist, photos, imagenet (20 labelled ImageNet images), "
                         f"a .npz (x[, y]), an image folder, or imdb (test reviews; text models) "
                         f"(default: {DEFAULT_INPUTS}, imdb for text models)")
    explain.add_argument("--text", action="append", default=None, metavar="SENTENCE",
                         help="explain this sentence per word with an IMDB text model (default imdb_lstm); "
                         "repeat for several; words outside the vocabulary are shown as unknown")
    explain.add_argument("--methods", default=None, help="comma-separated method names (default: all maps)")
    explain.add_argument("--out", default=None,
                         help="output directory (default: results/explain, results/explain_text for text)")
    explain.add_argument("--count", type=int, default=6, help="number of input samples (reviews for imdb)")
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
