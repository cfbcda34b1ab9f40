"""Python that runs on a testbed's nodes rather than on the control node. Roles copy these
files to the nodes they configure; each needs only the standard library and what its node
has installed (Buildbot on the master's node, git on the git server's)."""
