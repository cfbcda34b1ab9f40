"""Run in the container each time it starts from the image: new passwords for the database
user, the admin and every service user (made here, written only to root-only files and the
services' own configuration), the endpoints moved to the address clients reach the
container at (argument 1), then every service started. The admin password is left in
/root/os/admin-password (mode 0600) for whoever starts the container to read."""

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import openstack

sys.path.insert(0, "/root/os")
from ini import set_option  # noqa: E402

HERE = Path("/root/os")
DATABASE_CONFIGS = {  # file: (section, option) holding a database URL
    "/etc/keystone/keystone.conf": [("database", "connection")],
    "/etc/placement/placement.conf": [("placement_database", "connection")],
    "/etc/glance/glance-api.conf": [("database", "connection")],
    "/etc/neutron/neutron.conf": [("database", "connection")],
    "/etc/nova/nova.conf": [("api_database", "connection"), ("database", "connection")],
}
SERVICE_PASSWORDS = {  # file: sections whose password is the service users'
    "/etc/placement/placement.conf": ["keystone_authtoken"],
    "/etc/glance/glance-api.conf": ["keystone_authtoken"],
    "/etc/neutron/neutron.conf": ["keystone_authtoken", "nova"],
    "/etc/nova/nova.conf": ["keystone_authtoken", "placement", "neutron", "service_user"],
}
SERVICE_USERS = ("nova", "neutron", "placement", "glance")
LATER_UNITS = (
    "placement-api",
    "glance-api",
    "neutron-api",
    "neutron-rpc-server",
    "nova-api",
    "nova-conductor",
    "nova-scheduler",
    "nova-compute",
)


def option(path: str, section: str, key: str) -> str:
    current = None
    for line in Path(path).read_text().splitlines():
        header = re.match(r"^\s*\[(.+)\]\s*$", line)
        if header:
            current = header.group(1).strip()
        elif current == section and re.match(rf"^\s*{key}\s*=", line):
            return line.split("=", 1)[1].strip()
    raise KeyError(f"{path} [{section}] {key}")


def wait_port(port: int, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> None:
    address = sys.argv[1]
    os.umask(0o077)
    db_password, admin_password, service_password = (secrets.token_hex(16) for _ in range(3))
    wait_port(3306)
    subprocess.run(
        ["mysql"],
        input=f"ALTER USER 'os'@'127.0.0.1' IDENTIFIED BY '{db_password}';",
        text=True,
        check=True,
    )
    for path, options in DATABASE_CONFIGS.items():
        for section, key in options:
            url = re.sub(r"//os:[^@]*@", f"//os:{db_password}@", option(path, section, key))
            set_option(path, section, key, url)
    for path, sections in SERVICE_PASSWORDS.items():
        for section in sections:
            set_option(path, section, "password", service_password)
    subprocess.run(["systemctl", "restart", "keystone"], check=True)
    wait_port(5000)
    ks = f"http://{address}:5000/v3/"
    subprocess.run(
        [
            "keystone-manage",
            "bootstrap",
            "--bootstrap-admin-url",
            ks,
            "--bootstrap-internal-url",
            ks,
            "--bootstrap-public-url",
            ks,
            "--bootstrap-region-id",
            "regionOne",
        ],
        env={**os.environ, "OS_BOOTSTRAP_PASSWORD": admin_password},
        check=True,
        capture_output=True,
    )
    cloud = openstack.connect(
        auth_url="http://127.0.0.1:5000/v3",
        username="admin",
        password=admin_password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="regionOne",
    )
    for name in SERVICE_USERS:
        cloud.identity.update_user(cloud.identity.find_user(name), password=service_password)
    for endpoint in cloud.identity.endpoints():
        moved = re.sub(r"^http://[^:/]+", f"http://{address}", endpoint.url)
        if moved != endpoint.url:
            cloud.identity.update_endpoint(endpoint, url=moved)
    (HERE / "admin-password").write_text(admin_password + "\n")
    subprocess.run(["systemctl", "restart", *LATER_UNITS], check=True)


if __name__ == "__main__":
    main()
