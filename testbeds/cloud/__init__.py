"""Pulumi components that build a testbed's infrastructure on a cloud, from its plan."""
