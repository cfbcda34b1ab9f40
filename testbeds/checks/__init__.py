"""Check suites run by `testbed verify` against a live testbed."""
