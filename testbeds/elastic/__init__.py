"""Elastic Slurm nodes: nodes of a group with `max` that Slurm starts when jobs wait for them
and removes when they idle, through its own power saving (ResumeProgram, SuspendProgram).

On the controller, the programs Slurm calls only send a request over a socket; the node
broker at the other end (`broker`) checks it and starts or removes exactly that instance's
elastic nodes (`local_nodes` on the local target). The broker runs beside the instance,
started by `up` and stopped by `down` (`service`)."""
