"""The local target: each node a systemd container under podman, from a base image built
with debootstrap (or a baked image of its group), on a network and volumes of its own."""
