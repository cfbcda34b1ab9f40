#!/bin/sh
# seed-repository.sh SEED_DIR BARE_REPO OWNER: commit SEED_DIR as the first commit of
# BARE_REPO's main branch, as OWNER, unless the repository already has history (pushes are
# never overwritten).
set -eu
seed=$1
repo=$2
owner=$3
if runuser -u "$owner" -- git --git-dir="$repo" rev-parse --verify --quiet refs/heads/main >/dev/null; then
    echo "has history"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$seed/." "$work/"
chown -R "$owner" "$work"
cd "$work"
as_owner() { runuser -u "$owner" -- env HOME="$work" "$@"; }
as_owner git init --quiet --initial-branch=main
as_owner git add --all
as_owner git commit --quiet --message "Initial import"
as_owner git push --quiet "$repo" main
echo "seeded $(as_owner git rev-parse HEAD)"
