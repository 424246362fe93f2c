"""Contest metrics (per output, per test case) and the tuning objective built on them."""
