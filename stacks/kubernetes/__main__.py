"""A testbed's cloud-native side on Kubernetes: read the stack config, build, export."""

import pulumi

from testbeds.cloud.kubernetes import testbed_program
from testbeds.plan import resolve

config = pulumi.Config()
plan = resolve(
    config.require("testbed"),
    site=config.require("site"),
    target="kubernetes",
    instance=config.get("instance") or None,
)
testbed = testbed_program(plan, config.require_secret)
pulumi.export("namespace", testbed.namespace)
