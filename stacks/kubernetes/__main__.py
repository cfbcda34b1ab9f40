"""A testbed's cloud-native side on Kubernetes: read the stack config, build, export."""

import pulumi

from testbeds.model.plan import resolve_stack
from testbeds.targets.kubernetes.program import testbed_program

config = pulumi.Config()
plan = resolve_stack(config, "kubernetes")
testbed = testbed_program(plan, config.require_secret)
pulumi.export("namespace", testbed.namespace)
