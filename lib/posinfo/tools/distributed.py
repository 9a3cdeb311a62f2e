"""Train a chapter's classifier on several GPUs (or CPU processes) with torchrun + DDP.

    torchrun --nproc_per_node=4 -m posinfo.tools.distributed gap_keeps_position -p profile paper
    torchrun --nproc_per_node=4 -m posinfo.tools.distributed channel_order -p profile paper \
        --target class --permute-at 5 --seed 1

The model is written into the model cache under exactly the key the chapter computes for
the same configuration, so running the chapter afterwards (`python -m posinfo.run ...` with
the same parameters) loads it instead of training. The cache is checked before any process
trains: an unwritable POSINFO_CACHE, or POSINFO_CACHE=off (the model would be thrown away),
is refused, and a model already cached is not trained again; so is the paper profile's data.

What DDP changes: every rank draws the same global batch from the same seeded generator
and trains on its own slice of it (batch_size / world_size rows), and gradients are
averaged across ranks, so one optimizer step sees the same batch as a single-process run.
BatchNorm statistics are per rank unless CUDA is used, where BatchNorm is converted to
SyncBatchNorm. On CPU (gloo) the result is therefore that of one process which feeds each
rank's rows through the network on their own and averages the losses, not that of one
process with the whole batch; the test compares the two.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .. import cache
from ..canvas import make_task
from ..permute import reseed_permutations
from ..run import check_data, parse_value
from ..settings import Settings, chapter_settings
from ..train import (COMPILE_BACKENDS, build_model, data_generator, evaluate, fit, model_config,
                    prepare_model, seed_everything, store_trained)

CLASSIFIER_CHAPTERS = ("gap_keeps_position", "channel_order")


class ShardedTask:
    """A task whose training batches are this rank's rows of every global batch."""

    def __init__(self, task, rank: int, world_size: int):
        self.task, self.rank, self.world_size = task, rank, world_size
        self.train = task.train

    def train_batches(self, batch_size, generator):
        for x, y, cells in self.task.train_batches(batch_size, generator):
            yield (x[self.rank::self.world_size], y[self.rank::self.world_size],
                   cells[self.rank::self.world_size])


def train_distributed(config: dict, compile: str | None = None) -> dict | None:
    """Train one classifier config under the process group; rank 0 caches and evaluates it.

    ``compile``: a torch.compile backend for ``fit`` (None: $POSINFO_COMPILE, else off).
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    task = make_task(Settings(config), config["target"], device=device)
    seed_everything(config["seed"])  # same seed on every rank: same init, same data
    generator = data_generator(config["seed"])
    model = build_model(config, task)
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    prepare_model(model, device)  # the layout is fixed before DDP builds its gradient buckets
    ddp = DistributedDataParallel(model,
                                  device_ids=[device.index] if device.type == "cuda" else None)
    history = fit(ddp, ShardedTask(task, rank, world), epochs=config["epochs"],
                  batch_size=config["batch_size"], lr=config["lr"], betas=config["betas"],
                  generator=generator, device=device, desc=f"rank {rank}", compile=compile)
    if rank != 0:
        return None
    if device.type == "cuda":  # back to plain BatchNorm so the chapter's model can load it
        plain = build_model(config, task)
        plain.load_state_dict(model.state_dict())
        model = plain.to(device)
    path = store_trained(config, model, history)
    reseed_permutations(model, config["seed"] + 1)
    result = evaluate(model, task, device)
    return {"path": path, "accuracy": result.accuracy, "history": history}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="torchrun ... -m posinfo.tools.distributed",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapter", choices=CLASSIFIER_CHAPTERS)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a chapter parameter (repeatable)")
    parser.add_argument("--target", choices=("location", "class"), default="location")
    parser.add_argument("--permute-at", type=int, default=0,
                        help="channel shuffle placement (channel_order chapter), 0 for none")
    parser.add_argument("--compile", nargs="?", const="inductor", choices=COMPILE_BACKENDS,
                        help="train with torch.compile (default backend: inductor)")
    parser.add_argument("--seed", type=int, help="the model's seed (-p seed N alike)")
    args = parser.parse_args(argv)
    params = {name: parse_value(value) for name, value in args.parameter}
    if args.seed is not None:
        params["seed"] = args.seed
    profile = params.pop("profile", "paper")
    # Validate before joining the process group: a typo fails fast on every rank.
    settings = chapter_settings(args.chapter, profile, **params)
    try:
        if cache.check_writable() is None:  # the cache is off
            parser.error(f"{cache.CACHE_ENV}=off: the trained model would be thrown away; "
                         f"this tool exists to leave it in the cache (unset "
                         f"{cache.CACHE_ENV} or name a writable folder)")
        check_data(settings)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    # The same config dict the chapter builds, so the cache key matches: channel_order always
    # names its placement (0 for the baseline), chapter 1 never does.
    changes = {"permute_at": args.permute_at} if args.chapter == "channel_order" else {}
    if args.permute_at and args.chapter != "channel_order":
        parser.error("--permute-at belongs to the channel_order chapter")
    config = model_config(settings, args.target, **changes)
    if cache.load(config) is not None:
        print(f"{args.chapter} ({args.target}) is already cached at {cache.path_for(config)}: "
              f"nothing to train", flush=True)
        return 0

    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        if settings.batch_size % dist.get_world_size():
            raise ValueError(f"batch_size={settings.batch_size} must be divisible by the "
                             f"{dist.get_world_size()} processes")
        result = train_distributed(config, args.compile)
        if result is not None:
            print(f"trained {args.chapter} ({args.target}) on {dist.get_world_size()} processes: "
                  f"accuracy {result['accuracy']:.3f}; cached at {result['path']}", flush=True)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
