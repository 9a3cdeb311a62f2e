"""The command line of the benchmarks: ``python -m posinfo.tools.bench [--gpu] ...`` (the
package's docstring lists the flags)."""
from __future__ import annotations

import argparse
import os

from . import __doc__ as USAGE


def concurrency(text: str) -> tuple:
    """--concurrency: numbers of processes, comma-separated ("1,4,8"), or "none"."""
    if text.strip().lower() == "none":
        return ()
    try:
        runs = tuple(int(part) for part in text.split(","))
    except ValueError:
        runs = ()
    if not runs or min(runs) < 1:
        raise argparse.ArgumentTypeError(
            f"--concurrency takes whole numbers of processes >= 1, comma-separated (e.g. "
            f"1,4,8), or none; got {text!r}")
    return runs


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m posinfo.tools.bench", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapters", action="store_true",
                        help="also time every chapter at the default profile, cold and warm")
    parser.add_argument("--keep", metavar="DIR",
                        help="with --chapters: keep the executed notebooks and cache in DIR")
    parser.add_argument("--tests", action="store_true",
                        help="also time README's test command, `make test` (about 5 min)")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the torch.compile measurement (about a minute on CPU)")
    parser.add_argument("--gpu", action="store_true",
                        help="only the GPU bench: the paper's training step, eager vs "
                             "torch.compile vs CUDA graphs (needs CUDA unless --quick)")
    parser.add_argument("--json", metavar="PATH", help="with --gpu: write the results here")
    parser.add_argument("--quick", action="store_true",
                        help="with --gpu: a tiny model, a fraction of a second per arm (tests)")
    parser.add_argument("--budget", type=float, metavar="S",
                        help="with --gpu: skip arms that would start too late to end within "
                             "S seconds (default 140)")
    parser.add_argument("--concurrency", type=concurrency, metavar="K,K,...",
                        help="with --gpu: an arm for each number K of graphed runs trained at "
                             "once, each in its own process, set against one (default 1,4,8; "
                             "--quick 2; none: no such arm)")
    args = parser.parse_args(argv)
    if (args.json or args.quick or args.budget is not None
            or args.concurrency is not None) and not args.gpu:
        parser.error("--json, --quick, --budget and --concurrency go with --gpu")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    os.environ.setdefault("POSINFO_PROGRESS", "off")  # no progress bars between the lines
    if args.gpu:
        from . import gpu
        gpu.main(args.quick, args.json, args.budget, args.concurrency)
    else:
        from . import cpu
        cpu.main(args.chapters, args.keep, args.tests, compile=not args.no_compile)


if __name__ == "__main__":
    main()
