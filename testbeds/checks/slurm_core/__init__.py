"""Slurm core: munge, daemons, node state, a multi-node batch job."""
