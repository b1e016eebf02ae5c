"""Benchmarks: ``python -m bench`` runs them all (see ``bench/__main__.py``); each prints figures
and writes ``bench/results.json``, and none asserts a timing."""
