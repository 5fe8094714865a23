"""Load and replay benchmarks; each writes its section of BENCHMARKS.md."""
