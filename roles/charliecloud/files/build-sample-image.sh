#!/bin/bash
# Build a tiny container image (busybox) as a flattened filesystem tarball, with the
# directories and files ch-run binds onto, and write it to $1 atomically.
set -euo pipefail
dest=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,etc,home,shared,proc,sys,dev,tmp,mnt,run,var/tmp}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
for file in passwd group hosts resolv.conf machine-id; do : > "$root/etc/$file"; done
echo "wp5-testbeds sample image (busybox)" > "$root/etc/wp5-image"
chmod 1777 "$root/tmp" "$root/var/tmp"
tar --numeric-owner --owner=0 --group=0 -C "$root" -czf "$dest.partial" .
chmod 0644 "$dest.partial"
mv "$dest.partial" "$dest"
