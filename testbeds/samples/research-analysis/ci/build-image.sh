#!/bin/sh
# Build the analysis image (a static busybox, the tools in bin/ and the folders Charliecloud
# binds onto) and push it to the testbed registry, tagged with the commit. The password
# reaches buildah on stdin, never on a command line.
set -eu
image="$CI_REGISTRY/$CI_PROJECT/analysis:$CI_COMMIT_SHA"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/bin" "$root/etc" "$root/home" "$root/shared" "$root/proc" "$root/sys" \
  "$root/dev" "$root/tmp" "$root/mnt" "$root/run" "$root/var/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
for tool in bin/*; do
  cp "$tool" "$root/bin/" && chmod 0755 "$root/$tool"
done
for file in passwd group hosts resolv.conf machine-id; do : > "$root/etc/$file"; done
chmod 1777 "$root/tmp" "$root/var/tmp"

export REGISTRY_AUTH_FILE="$work/auth.json"
printf '%s' "$CI_REGISTRY_PASSWORD" |
  buildah login --username "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY" > /dev/null
container=$(buildah from scratch)
buildah copy --quiet "$container" "$root" / > /dev/null
buildah config --env PATH=/bin --label "org.opencontainers.image.revision=$CI_COMMIT_SHA" \
  "$container"
buildah commit --quiet "$container" "$image" > /dev/null
buildah rm "$container" > /dev/null
buildah push --quiet --digestfile "$work/digest" "$image" "docker://$image"
buildah rmi "$image" > /dev/null
echo "pushed $image ($(cat "$work/digest"))"
