"""Rucio: the server, its storage elements, rules replicating datasets by third-party copy."""
