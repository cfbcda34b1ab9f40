"""The composed checks drive Rucio like the data-management ones: the same fixtures."""

from testbeds.checks.data_management.conftest import client, rucio, tokens

__all__ = ["client", "rucio", "tokens"]
