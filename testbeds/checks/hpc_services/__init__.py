"""hpc-access services: accounting, shared storage, users, MPI, GPUs, modules, monitoring."""
