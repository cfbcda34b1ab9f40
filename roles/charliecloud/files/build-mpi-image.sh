#!/bin/bash
# Build a Debian image carrying this node's own OpenMPI and PMIx, as an image folder ch-run
# runs directly (read-only, so every user can share it), and move it to $1 atomically.
# MPI in a container across nodes needs the same MPI and PMIx inside as Slurm uses outside;
# copying them from the node guarantees that. Only /usr and the few /etc files MPI and the
# loader read are copied: no host key, munge key, password or certificate key goes in.
set -euo pipefail
dest=$1
command -v mpirun > /dev/null || { echo "no OpenMPI on $(hostname): give this node the openmpi role" >&2; exit 1; }
work=$(mktemp -d "$dest.partial.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C / --exclude=usr/local --exclude=usr/lib/jvm --exclude='usr/lib/python3*' \
  --exclude=usr/share/doc --exclude=usr/share/man --exclude=usr/share/locale \
  --exclude=usr/share/info -cf - usr | tar -C "$work" -xf -
for link in bin lib lib64 sbin; do
  [ -L "/$link" ] && cp -P "/$link" "$work/$link"
done
mkdir -p "$work"/{etc,home,shared,scratch,proc,sys,dev,tmp,mnt,run,var/tmp}
for path in alternatives openmpi ld.so.conf ld.so.conf.d ld.so.cache os-release debian_version; do
  [ -e "/etc/$path" ] && cp -a "/etc/$path" "$work/etc/"
done
for file in passwd group hosts resolv.conf machine-id; do : > "$work/etc/$file"; done
echo "wp5-testbeds sample image (Debian $(cat /etc/debian_version), OpenMPI from the node)" \
  > "$work/etc/wp5-image"
chmod 1777 "$work/tmp" "$work/var/tmp"
chmod 0755 "$work"
# A folder without the marker is a build of this script's that did not finish: replace it
# (mv would otherwise put the new image inside it).
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
