"""Tooling that no chapter needs: the front page's verdict table (``report``), training on
several processes (``distributed``), the whole book on a GPU machine (``gpu_book`` and its
``gpu_wheels.txt``) and the speed benchmarks (``bench``).

Arrows go one way: tools import the science modules of ``posinfo``, never the reverse (a
test reads every import). Nothing here is part of the model cache's fingerprint, so editing
a tool retrains nothing. Standard library only at this level: ``gpu_book`` starts before any
wheel is installed.
"""
