"""A testbed's cloud-native side on Kubernetes: read the stack config, build, export."""

import pulumi

from testbeds.cloud.kubernetes import KubernetesTestbed, KubernetesTestbedArgs
from testbeds.cloud.sites import kubernetes_site
from testbeds.plan import resolve

config = pulumi.Config()
plan = resolve(
    config.require("testbed"),
    site=config.require("site"),
    target="kubernetes",
    instance=config.get("instance") or None,
)
testbed = KubernetesTestbed(
    plan.instance, KubernetesTestbedArgs(plan=plan, site=kubernetes_site(plan))
)
pulumi.export("namespace", testbed.namespace)
