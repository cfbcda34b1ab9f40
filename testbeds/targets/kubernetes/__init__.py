"""The Kubernetes target: its Pulumi program (`program`, the workloads with the pinned
charts), Helm and the charts (`helm`, `charts`) and the `Target` (`target`)."""
