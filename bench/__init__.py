"""Benchmarks, outside the product packages: the ``courier bench`` command group
(``bench.cli``, plugged into ``courier`` by an entry point), its scenarios and the
standalone edge-latency measure ``python -m bench.latency`` (see docs/benchmarks.md).

It imports ``delivery``, ``consumers`` and ``api``; none of them imports it. It needs the
``bench`` extra (``pip install -e '.[bench]'``) and is not in the Docker image.
"""
