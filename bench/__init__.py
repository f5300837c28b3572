"""Benchmarks of the spend path (issue 7): `make bench`, see docs/performance.md."""
