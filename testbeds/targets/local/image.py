"""The local base image: Debian with systemd, built with debootstrap and cached by content hash.

No container registry is reachable from the machines this runs on, so the image is built
from the Debian mirror. Its tag is a hash of everything that goes into it; a change to any
input gives a new tag, and an unchanged input reuses the image already in podman's store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from testbeds import deadlines, paths
from testbeds.errors import PreflightError
from testbeds.progress import heartbeat
from testbeds.targets.local import podman

IMAGE_REPOSITORY = "localhost/wp5-testbeds-base"
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "openssh-server",
    "sudo",
    "iproute2",
    "procps",
    "ca-certificates",
    "less",
)

# Run inside the new root before it is imported. Keeps the image small and makes every
# container generate its own identity (machine id, SSH host keys) on first boot; Ansible
# reaches nodes over SSH, the same path as on every other target.
SETUP_SCRIPT = r"""
set -eu
mirror=%(mirror)s
suite=%(suite)s
echo "deb $mirror $suite main" > /etc/apt/sources.list
echo "deb $mirror $suite-updates main" >> /etc/apt/sources.list
cat > /etc/dpkg/dpkg.cfg.d/01-wp5-nodoc <<'CFG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
printf 'Acquire::Languages "none";\nAPT::Install-Recommends "false";\n' > /etc/apt/apt.conf.d/01-wp5
rm -rf /usr/share/doc/* /usr/share/man/* /var/cache/apt/*.bin /var/lib/apt/lists/*
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d
cat > /etc/systemd/system/ssh.service.d/wp5-host-keys.conf <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
cat > /etc/ssh/sshd_config.d/wp5.conf <<'CFG'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
CFG
systemctl enable ssh.service >/dev/null 2>&1
systemctl mask systemd-firstboot.service getty@tty1.service >/dev/null 2>&1 || true
# Debian's daily timers (package lists and upgrades, backups, fstrim, e2scrub) would wake
# in every node at times of their own, fetching and unpacking in the middle of a run.
systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
  e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
: > /etc/machine-id
echo 'root:*' | chpasswd -e
# The package lists are left out; an old time stamp makes the first apt task fetch them.
touch -d @0 /var/lib/apt/lists
"""


def image_inputs(mirror: str, suite: str) -> dict[str, object]:
    return {
        "mirror": mirror,
        "suite": suite,
        "packages": BASE_PACKAGES,
        "setup": SETUP_SCRIPT,
        "format": 3,
    }


def setup_script(mirror: str, suite: str) -> str:
    """The script that finishes the image's root: the site's mirror and suite reach it as
    shell-quoted data, never as shell code."""
    return SETUP_SCRIPT % {"mirror": shlex.quote(mirror), "suite": shlex.quote(suite)}


def image_ref(mirror: str, suite: str) -> str:
    digest = hashlib.sha256(json.dumps(image_inputs(mirror, suite), sort_keys=True).encode())
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:16]}"


def ensure_base_image(mirror: str, suite: str, say: Callable[[str], None]) -> str:
    """Return the tag of the base image, building it only when no image has these inputs."""
    ref = image_ref(mirror, suite)
    if podman.image_exists(ref):
        return ref
    cache = paths.cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    # Two testbeds brought up at once must not both build the same image.
    with (cache / "base-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if podman.image_exists(ref):
            return ref
        _build(ref, mirror, suite, cache, say)
    return ref


def _build(ref: str, mirror: str, suite: str, cache: Path, say: Callable[[str], None]) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise PreflightError("debootstrap is not installed (Debian: apt-get install debootstrap)")
    start = time.monotonic()
    say(f"building base image {ref} from {mirror} ({suite}); this happens once per input change")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache) as tmp:
        rootfs = Path(tmp) / "rootfs"
        limit_s = deadlines.seconds("debootstrap")
        argv = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            suite,
            str(rootfs),
            mirror,
        ]
        returncode, output = _run_with_progress(argv, limit_s, say, start)
        if returncode is None:
            raise deadlines.DeadlineExpired(
                deadlines.expired("debootstrap", limit_s, f"building the base image from {mirror}")
            )
        if returncode != 0:
            tail = "\n".join(output[-15:])
            raise PreflightError(f"debootstrap of {suite} from {mirror} failed:\n{tail}")
        subprocess.run(
            ["chroot", str(rootfs), "/bin/sh", "-c", setup_script(mirror, suite)],
            check=True,
            capture_output=True,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                podman.podman_binary(),
                "import",
                "--change",
                "CMD=/sbin/init",
                "--change",
                f"LABEL={podman.LABEL_PREFIX}.image=base",
                "-",
                ref,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0:
            raise PreflightError(f"podman import of the base image failed: {imported.stderr}")
    say(f"base image built in {time.monotonic() - start:.0f}s")


def _run_with_progress(
    argv: list[str], limit_s: float, say: Callable[[str], None], start: float
) -> tuple[int | None, list[str]]:
    """Run debootstrap, saying what it is at (its newest "I: ..." line) whenever the build
    would otherwise be silent; its exit code (None when it ran out of time) and output."""
    output: list[str] = []
    # A session of its own, so that running out of time stops debootstrap's children too
    # (they hold its output open).
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as proc:
        assert proc.stdout is not None

        def status() -> str:
            stage = next((line for line in reversed(output) if line.startswith("I: ")), "")
            at = f": {stage[3:].strip()}" if stage else ""
            return f"  base image: debootstrap {time.monotonic() - start:.0f}s{at}"

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(limit_s, stop)
        timer.start()
        try:
            with heartbeat(status, tell=say):
                for line in proc.stdout:
                    output.append(line.rstrip("\n"))
        finally:
            timer.cancel()
        returncode = proc.wait()
    if returncode < 0 and time.monotonic() - start >= limit_s:
        return None, output
    return returncode, output
