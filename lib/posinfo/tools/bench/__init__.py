"""Speed benchmarks, printed as ratios measured in one run on one machine.

    python -m posinfo.tools.bench             # canvases, training step, loop overhead (~2 min)
    python -m posinfo.tools.bench --chapters  # + each chapter's time, training vs the rest
                                              #   (~15 min)
    python -m posinfo.tools.bench --tests     # + README's test command, `make test` (~5 min)
    python -m posinfo.tools.bench --gpu [--json PATH] [--quick] [--budget S]
                                    [--concurrency K,K,...]
                                              # only the GPU bench: the paper's CIFAR-10
                                              # location run's training step, eager vs
                                              # torch.compile vs CUDA graphs (63 s of arms on
                                              # an H200), and K graphed runs at once, each in
                                              # its own process, against one (K: 1,4,8;
                                              # --quick: tiny, any device, K: 2)
    python -m posinfo.tools.bench.gpu_check [--json PATH]
                                              # train.fit's graphed loop: captured vs eager
                                              # losses and fit graphed vs eager, for every
                                              # kind of training (--cpu: the script only)

Two programs: ``cpu`` (the 2-core machine the book is built on) and ``gpu`` (the paper's
training step on one GPU, with its data in ``gpu_stream``, the library's own batches, its
runs trained at once in processes in ``gpu_concurrent``, and its arithmetic in
``gpu_report``); ``gpu_check`` checks train.fit's graphed loop on a GPU.
Both time the training step of ``common``, written once. Machines are noisy, so no speed is
asserted in a test; the book's Reproduce page quotes the output together with the machine
it came from.
"""

# The GPU bench's time limits, here (standard library only) so that ``gpu_book``, which
# starts it before any wheel is installed, reads the same numbers. Seconds: no arm starts
# that would end after the budget; at budget + HARD_STOP_AFTER_BUDGET_S the bench writes
# what it has and exits (status 3), whatever still runs.
GPU_BUDGET_S, HARD_STOP_AFTER_BUDGET_S = 140.0, 40.0
