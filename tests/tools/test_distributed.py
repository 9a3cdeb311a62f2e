"""The torchrun path, exercised on CPU: two gloo processes train a chapter's model with DDP,
leave it in the cache under the key the chapter itself computes, and train the weights that
one process computes when it averages the two ranks' losses as DDP averages their gradients."""
import os
import subprocess
import sys

import pytest
import torch

from posinfo.canvas import make_task
from posinfo.permute import ChannelPermutation
from posinfo.settings import Settings, chapter_settings
from posinfo.tools.distributed import ShardedTask
from posinfo.train import (build_model, data_generator, fit, model_config, seed_everything,
                           train_classifier)

WORLD = 2
SMALL = dict(epochs=2, width=4, image_size=8, n_train=64, n_test=10)
TINY = ["-p", "profile", "smoke"] + [arg for name, value in SMALL.items()
                                   for arg in ("-p", name, str(value))]


def test_shards_partition_every_global_batch():
    class Task:
        train = None

        def train_batches(self, batch_size, generator):
            yield torch.arange(10), torch.arange(10), torch.arange(10)

    shards = [next(ShardedTask(Task(), r, 3).train_batches(10, None))[0] for r in range(3)]
    assert [s.tolist() for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


class RanksInOneProcess(torch.nn.Module):
    """What DDP computes on ``world`` ranks, in one process: each rank's rows of the batch
    (ShardedTask's slicing) go through the model on their own, so BatchNorm normalises each
    shard with the shard's statistics, as it does on a rank; each channel shuffle draws the
    same permutation for every shard, as the ranks' identically seeded shuffles do. The
    logits go back in batch order, so the batch's mean loss is the mean of the ranks' mean
    losses (equal shards): its gradient is DDP's average of the ranks' gradients."""

    def __init__(self, model: torch.nn.Module, world: int):
        super().__init__()
        self.model, self.world = model, world
        self.shuffles = [m for m in model.modules() if isinstance(m, ChannelPermutation)]

    def forward(self, x):
        states = [m.generator.get_state() for m in self.shuffles]
        shards = []
        for rank in range(self.world):
            for shuffle, state in zip(self.shuffles, states):
                shuffle.generator.set_state(state)
            shards.append(self.model(x[rank::self.world]))
        return torch.stack(shards, dim=1).flatten(0, 1)  # row i came from rank i % world


def one_process_weights(config: dict) -> tuple[dict, dict]:
    """Initial and trained parameters of ``config``'s model, trained as RanksInOneProcess
    (the order of calls is distributed.train_distributed's, so the data are the same)."""
    task = make_task(Settings(config), config["target"], device="cpu")
    seed_everything(config["seed"])
    generator = data_generator(config["seed"])
    model = build_model(config, task)
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    fit(RanksInOneProcess(model, WORLD), task, epochs=config["epochs"],
        batch_size=config["batch_size"], lr=config["lr"], betas=config["betas"],
        generator=generator, device="cpu", compile="off")
    return initial, {k: v.detach().clone() for k, v in model.named_parameters()}


def test_torchrun_with_two_processes_trains_the_model_the_chapter_then_loads(tmp_path,
                                                                           monkeypatch):
    settings = chapter_settings("channel_order", "smoke", **SMALL)
    config = model_config(settings, "class", permute_at=5)
    assert len(make_task(Settings(config), "class").train) % settings.batch_size == 0
    env = dict(os.environ, POSINFO_CACHE=str(tmp_path), OMP_NUM_THREADS="1",
               POSINFO_PROGRESS="off")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={WORLD}"]
    done = subprocess.run(torchrun + ["-m", "posinfo.tools.distributed", "channel_order",
                                      *TINY, "--target", "class", "--permute-at", "5",
                                      # DDP under torch.compile (trace only: no C++ here)
                                      "--compile", "aot_eager"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"on {WORLD} processes" in done.stdout
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path))
    loaded = train_classifier(config)
    assert loaded.from_cache and len(loaded.history) == SMALL["epochs"]

    # The weights DDP trained are those of one process averaging the ranks' losses: the two
    # updates agree to float rounding (1e-6 here; the bound leaves room for another CPU's
    # order of sums). Averaging the wrong rows, or no averaging at all, differed by 0.9.
    initial, expected = one_process_weights(config)
    trained = dict(loaded.model.named_parameters())
    assert trained.keys() == expected.keys()
    update = torch.cat([(expected[k] - initial[k]).flatten() for k in expected])
    gap = torch.cat([(trained[k].detach() - expected[k]).flatten() for k in expected])
    assert update.norm() > 0
    relative = float(gap.norm() / update.norm())
    assert relative < 1e-2, f"DDP's update differs from one process's by {relative:.1%}"


# ---- nothing trains that the cache would lose ----------------------------------------------
def _refusal(argv, capsys) -> str:
    from posinfo.tools import distributed

    with pytest.raises(SystemExit) as stop:
        distributed.main(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_an_unwritable_or_off_cache_is_refused_before_any_process_trains(tmp_path,
                                                                         monkeypatch, capsys):
    # it trained, then failed in store_trained, or printed "cached at None" and lost the model
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("POSINFO_CACHE", str(blocker / "cache"))
    assert "cannot be written" in _refusal(["gap_keeps_position", *TINY], capsys)
    monkeypatch.setenv("POSINFO_CACHE", "off")
    assert "POSINFO_CACHE=off" in _refusal(["gap_keeps_position", *TINY], capsys)


def test_the_documented_seed_option_names_the_model_and_a_cached_one_is_not_retrained(
        tmp_path, monkeypatch, capsys):
    from posinfo import cache
    from posinfo.tools import distributed

    # the Reproduce page's command ends in --seed 1, which the parser refused
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path))
    settings = chapter_settings("channel_order", "smoke", **SMALL, seed=1)
    cache.store(model_config(settings, "class", permute_at=5), {"history": []})
    argv = ["channel_order", *TINY, "--target", "class", "--permute-at", "5"]
    assert distributed.main(argv + ["--seed", "1"]) == 0  # no process group: nothing trains
    assert "already cached" in capsys.readouterr().out
    assert "--seed 1" in distributed.__doc__
