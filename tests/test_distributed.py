"""The torchrun path, exercised on CPU: two gloo processes train a chapter's model with DDP
and leave it in the cache under the key the chapter itself computes."""
import os
import subprocess
import sys

import torch

from posinfo.distributed import ShardedTask
from posinfo.settings import chapter_settings
from posinfo.train import model_config, train_classifier

TINY = ["-p", "profile", "smoke", "-p", "epochs", "1", "-p", "width", "4", "-p", "image_size", "8",
        "-p", "n_train", "64", "-p", "n_test", "10"]


def test_shards_partition_every_global_batch():
    class Task:
        train = None

        def train_batches(self, batch_size, generator):
            yield torch.arange(10), torch.arange(10), torch.arange(10)

    shards = [next(ShardedTask(Task(), r, 3).train_batches(10, None))[0] for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == list(range(10))


def test_torchrun_with_two_processes_trains_the_model_the_chapter_then_loads(tmp_path,
                                                                           monkeypatch):
    env = dict(os.environ, POSINFO_CACHE=str(tmp_path), OMP_NUM_THREADS="1",
               POSINFO_PROGRESS="off")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2"]
    done = subprocess.run(torchrun + ["-m", "posinfo.distributed", "channel_order", *TINY,
                                      "--target", "class", "--permute-at", "5",
                                      # DDP under torch.compile (trace only: no C++ here)
                                      "--compile", "aot_eager"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 2 processes" in done.stdout
    settings = chapter_settings("channel_order", "smoke", epochs=1, width=4, image_size=8,
                                n_train=64, n_test=10)
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path))
    loaded = train_classifier(model_config(settings, "class", permute_at=5))
    assert loaded.from_cache and len(loaded.history) == 1
