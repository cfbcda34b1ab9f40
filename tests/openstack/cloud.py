"""A real OpenStack control plane for the tests: Keystone, Placement, Glance, Neutron and Nova
from Debian 12's packages in one systemd container (no Pulumi CLI or OpenStack cloud is
reachable from here, but these services run).

The image is built from the local target's base image once per change of the files in
`control_plane/` (packages installed with the services kept from starting, then configured
by `control_plane/setup.sh`) and kept like the base image. Each start puts a container on a
network of its own, makes new passwords inside it (`control_plane/rekey.py`) and waits until
every API answers and the fake compute host is up. What is not real here: Nova's compute
driver is `fake.FakeDriver` (no instance boots), ports are bound by a stand-in ML2 driver,
there is no block storage service, and Pulumi's engine and provider are not exercised.

By hand:  python -m tests.openstack.cloud up     (prints how to reach it, not the password)
          python -m tests.openstack.cloud down
While one started by hand runs, the tests use it (and leave it running) instead of
starting their own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import openstack
import requests
from keystoneauth1.exceptions.connection import UnknownConnectionError
from openstack.connection import Connection
from requests.adapters import HTTPAdapter

from testbeds.model.loader import load_site
from testbeds.targets.local import image, podman

T = TypeVar("T")
FILES = Path(__file__).with_name("control_plane")
REPOSITORY = "localhost/wp5-testbeds-openstack"
LABEL = f"{podman.LABEL_PREFIX}.openstack-test"
API_PORTS = {"identity": 5000, "image": 9292, "network": 9696, "placement": 8778, "compute": 8774}
INSTALL_LIMIT_S = 3600
READY_LIMIT_S = 300
# No request to the control plane may hang a test run.
API_TIMEOUT_S = 60
# uWSGI's HTTP socket (every API here) may close a kept-alive connection as a request is
# sent on it; keystoneauth sends it again on a fresh one (a timeout counts as one too).
CONNECT_RETRIES = 2
# Where a started control plane is recorded for `down` (one per machine at a time by hand;
# the test fixture keeps its own).
RECORD = Path(tempfile.gettempdir()) / "wp5-testbeds-openstack.json"


@dataclass(frozen=True)
class ControlPlane:
    """One running control plane: its container, its network and how to log in."""

    container: str
    network: str
    address: str
    admin_password: str = field(repr=False)

    @property
    def auth_url(self) -> str:
        return f"http://{self.address}:{API_PORTS['identity']}/v3"

    def connect(self, user: str, password: str, project: str) -> Connection:
        """A connection as `user` in `project`; no request to it may hang a test run."""
        return _resending_idempotent_requests(
            openstack.connect(
                auth_url=self.auth_url,
                username=user,
                password=password,
                project_name=project,
                user_domain_name="Default",
                project_domain_name="Default",
                region_name="regionOne",
                api_timeout=API_TIMEOUT_S,
                connect_retries=CONNECT_RETRIES,
            )
        )

    def connect_credential(self, credential_id: str, secret: str) -> Connection:
        """A connection with an application credential (its own project, its own rules)."""
        return _resending_idempotent_requests(
            openstack.connect(
                auth_type="v3applicationcredential",
                auth_url=self.auth_url,
                application_credential_id=credential_id,
                application_credential_secret=secret,
                region_name="regionOne",
                api_timeout=API_TIMEOUT_S,
                connect_retries=CONNECT_RETRIES,
            )
        )

    def admin_connection(self, project: str = "admin") -> Connection:
        return self.connect("admin", self.admin_password, project)


def _resending_idempotent_requests(connection: Connection) -> Connection:
    """uWSGI may reset a kept-alive connection before any answer comes back: keystoneauth
    resends only what failed to connect, so requests resends the idempotent ones (GET, PUT,
    DELETE, HEAD) itself; a POST is never sent twice. A reset while an answer's body is read
    is not resent here (see `resent_on_reset`)."""
    # An int is urllib3's Retry(total=...): connect and read errors alike, no status codes;
    # its read retries are for idempotent methods only.
    connection.session.session.mount("http://", HTTPAdapter(max_retries=CONNECT_RETRIES))
    return connection


def resent_on_reset(request: Callable[[], T], attempts: int = 6, pause_s: float = 5) -> T:
    """An idempotent request sent again while the service resets the connection mid-answer
    (seen on this machine: Placement's first PUT after a start, under load, reset while its
    answer was read, which neither keystoneauth nor urllib3 resends); the last attempt's
    failure is raised."""
    for _ in range(attempts - 1):
        try:
            return request()
        except UnknownConnectionError as error:
            say(f"connection reset ({error}); sending again in {pause_s:.0f}s")
            time.sleep(pause_s)
    return request()


def say(text: str) -> None:
    print(f"openstack: {text}", file=sys.stderr, flush=True)


def base_image(tell: Callable[[str], None] = say) -> str:
    site = load_site("local")
    assert site.local is not None
    return image.ensure_base_image(site.local.debian_mirror, site.local.debian_suite, tell)


def _exec(container: str, *argv: str, limit_s: float = 600, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [podman.podman_binary(), "exec", "-i", container, *argv],
        input=stdin, capture_output=True, text=True, timeout=limit_s, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} in {container} failed ({proc.returncode}):\n"
            f"{proc.stdout.strip()[-800:]}\n{proc.stderr.strip()[-1500:]}"
        )
    return proc.stdout


def _run_container(name: str, ref: str, network: str | None) -> None:
    options = podman.detect_runtime_options()
    podman.run(
        "run", "-d", "--name", name, "--label", f"{LABEL}={name}", "--systemd=always",
        *options.args(), *(["--network", network] if network else []), ref, "/sbin/init",
    )  # fmt: skip


def _address(container: str, network: str) -> str:
    data = podman.inspect(container)
    return str(data["NetworkSettings"]["Networks"][network]["IPAddress"])


def _wait_booted(container: str) -> None:
    """Until systemd runs the units: "starting" counts, as the packages' own services (not
    yet configured, so they wait for ever) hold the boot of a freshly installed image."""
    deadline = time.monotonic() + 120
    while True:
        proc = podman.run("exec", container, "systemctl", "is-system-running", check=False)
        if proc.stdout.strip() in ("starting", "running", "degraded"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{container} did not boot: {proc.stdout.strip()}")
        time.sleep(1)


def _digest(base: str, *files: Path) -> str:
    digest = hashlib.sha256(base.encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def image_ref(base: str) -> str:
    return f"{REPOSITORY}:{_digest(base, *sorted(FILES.iterdir()))}"


def installed_ref(base: str) -> str:
    return f"{REPOSITORY}-packages:{_digest(base, FILES / 'packages.txt')}"


def _in_build_container(ref: str, from_ref: str, step: Callable[[str, str], None]) -> None:
    """Run `step(container, network address)` in a container of `from_ref` and commit it as
    `ref`; the container and its network are removed whatever happens."""
    name = f"wp5-osbuild-{secrets.token_hex(3)}"
    network = f"{name}-net"
    podman.run("network", "create", "--label", f"{LABEL}={name}", network)
    try:
        _run_container(name, from_ref, network)
        _wait_booted(name)
        step(name, _address(name, network))
        podman.run("stop", "-t", "60", name, timeout=120)
        podman.run("commit", "--change", "CMD=/sbin/init", name, ref, timeout=900)
    finally:
        podman.run("rm", "-f", "-t", "0", name, check=False)
        podman.run("network", "rm", "-f", network, check=False)


def _install(container: str, _: str) -> None:
    packages = (FILES / "packages.txt").read_text().split()
    # policy-rc.d keeps every service from starting while it is installed.
    _exec(container, "sh", "-c", "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && "
          "chmod 755 /usr/sbin/policy-rc.d")  # fmt: skip
    _exec(container, "apt-get", "update", "-qq", limit_s=600)
    _exec(
        container, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
        "--no-install-recommends", *packages, limit_s=INSTALL_LIMIT_S,
    )  # fmt: skip
    _exec(container, "sh", "-c", "rm -f /usr/sbin/policy-rc.d && apt-get clean")


def _configure(tell: Callable[[str], None]) -> Callable[[str, str], None]:
    def step(container: str, address: str) -> None:
        _exec(container, "mkdir", "-p", "/root/os")
        for path in sorted(FILES.iterdir()):
            podman.run("cp", str(path), f"{container}:/root/os/{path.name}")
        _exec(container, "bash", "/root/os/setup.sh", limit_s=900)
        _rekey_and_wait(container, address, tell)
        _exec(container, "nova-manage", "cell_v2", "discover_hosts")
        _exec(container, "rm", "-f", "/root/os/admin-password")

    return step


def build(tell: Callable[[str], None] = say) -> str:
    """The control plane's image, built only when none has these inputs (the packages in a
    layer of their own, kept while only the configuration changes)."""
    base = base_image(tell)
    ref, installed = image_ref(base), installed_ref(base)
    if podman.image_exists(ref):
        return ref
    if not podman.image_exists(installed):
        started = time.monotonic()
        tell(f"installing the OpenStack packages into {installed}")
        _in_build_container(installed, base, _install)
        tell(f"packages installed in {time.monotonic() - started:.0f}s")
    started = time.monotonic()
    tell(f"configuring {ref}")
    _in_build_container(ref, installed, _configure(tell))
    tell(f"configured in {time.monotonic() - started:.0f}s")
    return ref


def _rekey_and_wait(container: str, address: str, tell: Callable[[str], None]) -> str:
    _exec(container, "python3", "/root/os/rekey.py", address, limit_s=300)
    password = _exec(container, "cat", "/root/os/admin-password").strip()
    deadline = time.monotonic() + READY_LIMIT_S
    # An API is ready when it answers HTTP (its version document), not when its port takes
    # a connection: uWSGI listens before its application has loaded.
    for service, port in API_PORTS.items():
        while True:
            try:
                requests.get(f"http://{address}:{port}/", timeout=5).close()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service} API of {container} did not answer") from None
                time.sleep(0.5)
    plane = ControlPlane(container, "", address, password)
    cloud = plane.admin_connection()
    while True:
        hosts = [h for h in cloud.compute.hypervisors() if h.state == "up"]
        computes = [
            s for s in cloud.compute.services() if s.binary == "nova-compute" and s.state == "up"
        ]
        if hosts and computes:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no compute host came up in {container}")
        time.sleep(1)
    tell(f"all APIs answer at {address}")
    return password


def start(tell: Callable[[str], None] = say) -> ControlPlane:
    """A running control plane on a network of its own, with passwords of its own."""
    ref = build(tell)
    name = f"wp5-openstack-{secrets.token_hex(3)}"
    network = f"{name}-net"
    started = time.monotonic()
    podman.run("network", "create", "--label", f"{LABEL}={name}", network)
    try:
        _run_container(name, ref, network)
        _wait_booted(name)
        address = _address(name, network)
        password = _rekey_and_wait(name, address, tell)
    except BaseException:
        stop_by_name(name, network)
        raise
    plane = ControlPlane(name, network, address, password)
    tell(f"{name} ready in {time.monotonic() - started:.0f}s, using {memory_mb(plane):.0f} MB")
    return plane


def stop_by_name(container: str, network: str) -> None:
    """Remove the container and network one start made, and nothing else."""
    podman.run("rm", "-f", "-t", "5", container, check=False, timeout=120)
    podman.run("network", "rm", "-f", network, check=False)


def stop(plane: ControlPlane) -> None:
    stop_by_name(plane.container, plane.network)


def started_by_hand() -> ControlPlane | None:
    """The control plane `python -m tests.openstack.cloud up` left running, if any."""
    if not RECORD.exists():
        return None
    record = json.loads(RECORD.read_text())
    if podman.container_by_name(record["container"]) is None:
        return None
    password = _exec(record["container"], "cat", "/root/os/admin-password").strip()
    address = _address(record["container"], record["network"])
    return ControlPlane(record["container"], record["network"], address, password)


def memory_mb(plane: ControlPlane) -> float:
    """The container's memory use as podman reports it."""
    stats = json.loads(
        podman.run("stats", "--no-stream", "--format", "json", plane.container).stdout
    )
    usage = str(stats[0]["mem_usage"]).split("/")[0].strip()
    number, unit = float(usage[:-2]), usage[-2:].upper()
    return number * {"KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}.get(unit, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.openstack.cloud", description=__doc__)
    parser.add_argument("action", choices=["build", "up", "down"])
    action = parser.parse_args(argv).action
    if action == "build":
        print(build())
    elif action == "up":
        plane = start()
        RECORD.write_text(json.dumps({"container": plane.container, "network": plane.network}))
        print(
            f"OpenStack at {plane.auth_url} (user admin, project admin); the password is in "
            f"the container: podman exec {plane.container} cat /root/os/admin-password"
        )
    else:
        if not RECORD.exists():
            print("no control plane started by hand on this machine", file=sys.stderr)
            return 1
        record = json.loads(RECORD.read_text())
        stop_by_name(record["container"], record["network"])
        RECORD.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
