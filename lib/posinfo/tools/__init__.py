"""Tooling that no chapter needs: the front page's verdict table (``report``), training on
several processes (``distributed``), the book's GPU part on a GPU machine (``gpu_book``,
with ``prefetch`` and its wheels, ``gpu_wheels.txt``) and the speed benchmarks (``bench``).

Arrows go one way: tools import the science modules of ``posinfo``, never the reverse (a
test reads every import). Nothing here is part of the model cache's fingerprint, so editing
a tool retrains nothing. At most a quarter of the library's lines (tests/tools/
test_proportion.py).
"""
