"""Benchmarks of tether against its peers; ``python -m bench.run`` runs the suite."""
