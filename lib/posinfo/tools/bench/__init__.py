"""Speed benchmarks, printed as ratios measured in one run on one machine.

    python -m posinfo.tools.bench             # the training step, fit against a bare loop
    python -m posinfo.tools.bench --chapters  # + each chapter's time, training vs the rest
    python -m posinfo.tools.bench --gpu [--json PATH] [--quick] [--concurrency K,K]
                                  # train.fit's loop on one GPU: eager, graphed, K graphed
                                  # runs at once (default 4,8); --quick: tiny, any device
    python -m posinfo.tools.bench.gpu_check [--json PATH]
                                  # train.fit's graphed loop: captured vs eager losses for
                                  # every kind of training (--cpu: the script only)

``cpu`` times the 2-core machine the book is built on, ``gpu`` the paper's training step on
one GPU, ``gpu_check`` checks the graphed loop there. Machines are noisy, so no speed is
asserted in a test; the Reproduce page quotes the output with the machine it came from.
"""
