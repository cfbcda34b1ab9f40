"""A volume per shared filesystem, attached to the node that serves it."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from testbeds.model.plan import Plan
from testbeds.targets.openstack.program.part import Part
from testbeds.targets.openstack.site import OpenStackSite


class Storage(Part):
    def __init__(
        self,
        name: str,
        plan: Plan,
        site: OpenStackSite,
        instances: dict[str, openstack.compute.Instance],
        testbed: pulumi.Resource,
    ) -> None:
        super().__init__("Storage", f"{name}-storage", testbed)
        for fs in plan.definition.shared_filesystems:
            label = fs.path.strip("/").replace("/", "-") or "root"
            server = next(n for n in plan.nodes if n.group == fs.server)
            volume = openstack.blockstorage.Volume(
                f"{name}-{label}",
                size=fs.size_gb,
                volume_type=site.volume_type,
                description=f"{fs.path} of testbed {plan.instance}",
                opts=self.child,
            )
            openstack.compute.VolumeAttach(
                f"{name}-{label}",
                instance_id=instances[server.name].id,
                volume_id=volume.id,
                opts=self.child,
            )
        self.register_outputs({})
