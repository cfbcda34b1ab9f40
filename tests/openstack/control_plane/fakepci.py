"""Nova's fake compute driver with fake PCI devices (three SR-IOV physical functions with a
virtual function each), so that servers with `direct` ports are scheduled and bound. Nova's
own FakeDriverWithPciResources serves its functional tests on SQLite; its vendor and product
ids do not fit the columns of a real database, so they are replaced here by a ConnectX-6
Dx's, and the host is as large as the plain fake driver's (its base is a small one)."""

from nova.virt import fake
from oslo_serialization import jsonutils

VENDOR = "15b3"
PRODUCTS = {"type-PF": "101d", "type-VF": "101e"}


class FakePciDriver(fake.FakeDriverWithPciResources):
    vcpus = fake.FakeDriver.vcpus
    memory_mb = fake.FakeDriver.memory_mb
    local_gb = fake.FakeDriver.local_gb

    def get_available_resource(self, nodename):
        status = super().get_available_resource(nodename)
        devices = jsonutils.loads(status["pci_passthrough_devices"])
        for device in devices:
            device["vendor_id"] = VENDOR
            device["product_id"] = PRODUCTS[device["dev_type"]]
        status["pci_passthrough_devices"] = jsonutils.dumps(devices)
        return status
