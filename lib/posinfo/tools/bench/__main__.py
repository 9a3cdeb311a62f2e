"""The command line of the benchmarks (the package's docstring lists the flags)."""
from __future__ import annotations

import argparse
import os

from . import __doc__ as USAGE


def concurrency(text: str) -> tuple:
    """--concurrency: numbers of runs at once, comma-separated ("4,8"), or "none"."""
    if text.strip().lower() == "none":
        return ()
    try:
        runs = tuple(int(part) for part in text.split(","))
    except ValueError:
        runs = ()
    if not runs or min(runs) < 2:
        raise argparse.ArgumentTypeError(f"--concurrency takes whole numbers of runs >= 2, "
                                         f"comma-separated (e.g. 4,8), or none; got {text!r}")
    return runs


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m posinfo.tools.bench", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapters", action="store_true",
                        help="also time every chapter at the default profile, cold and warm")
    parser.add_argument("--keep", metavar="DIR",
                        help="with --chapters: keep the executed notebooks and cache in DIR")
    parser.add_argument("--gpu", action="store_true",
                        help="only the GPU bench (needs CUDA unless --quick)")
    parser.add_argument("--json", metavar="PATH", help="with --gpu: write the results here")
    parser.add_argument("--quick", action="store_true",
                        help="with --gpu: a tiny model, a fraction of a second per variant "
                             "(tests)")
    parser.add_argument("--concurrency", type=concurrency, metavar="K,K",
                        help="with --gpu: a variant of K graphed runs at once, each in its own "
                             "process, for each K (default 4,8; --quick 2; none: no such variant)")
    args = parser.parse_args(argv)
    if (args.json or args.quick or args.concurrency is not None) and not args.gpu:
        parser.error("--json, --quick and --concurrency go with --gpu")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    os.environ.setdefault("POSINFO_PROGRESS", "off")  # no progress bars between the lines
    if args.gpu:
        from . import gpu
        gpu.main(args.quick, args.json, args.concurrency)
    else:
        from . import cpu
        cpu.main(args.chapters, args.keep)


if __name__ == "__main__":
    main()
