"""The benchmark: the controller (B) against Asterisk's own dialplan (A) on the same machine.

`python -m bench` runs it all (see bench.run and BENCHMARKS.md).
"""
