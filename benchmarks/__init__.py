"""seqserve's benchmark: ``python -m benchmarks`` (see README, Benchmarks). Not part of the test suite."""
