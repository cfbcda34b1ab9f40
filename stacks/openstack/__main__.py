"""A testbed on OpenStack: read the stack config, build the components, export the nodes."""

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from testbeds.cloud_configuration import TestbedConfiguration
from testbeds.model.plan import resolve_stack
from testbeds.targets.openstack.program import OpenStackTestbed, OpenStackTestbedArgs
from testbeds.targets.openstack.site import openstack_site

config = pulumi.Config()
plan = resolve_stack(config, "openstack")
# The control node's SSH key and the munge key: generated once per stack, Pulumi secrets.
ssh_key = tls.PrivateKey(f"{plan.instance}-ssh", algorithm="ED25519")
munge_key = random.RandomBytes(f"{plan.instance}-munge", length=1024)
testbed = OpenStackTestbed(
    plan.instance,
    OpenStackTestbedArgs(
        plan=plan, site=openstack_site(plan), public_key=ssh_key.public_key_openssh
    ),
)
if config.get_bool("configure") is not False:
    # `pulumi up` then gives a configured, checked testbed; `testbed up --target openstack`
    # sets configure=false and runs the same step itself, with live progress.
    configured = TestbedConfiguration(
        f"{plan.instance}-configure",
        testbed=plan.name,
        site=plan.site.name,
        instance=plan.instance,
        nodes=testbed.nodes,
        entry_address=testbed.entry_address,
        munge_key_b64=munge_key.base64,
        ssh_private_key=ssh_key.private_key_openssh,
        ssh_user=openstack_site(plan).ssh_user,
        opts=pulumi.ResourceOptions(depends_on=[testbed]),
    )
    pulumi.export("checks_passed", configured.checks_passed)
pulumi.export("nodes", testbed.nodes)
pulumi.export("entry_address", testbed.entry_address)
pulumi.export("elastic_groups", testbed.elastic_groups)
pulumi.export("ssh_private_key", pulumi.Output.secret(ssh_key.private_key_openssh))
