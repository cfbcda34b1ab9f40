"""What the cloud targets share: their site profiles' sections (`sites`), the nodes a
program exports as the targets' node records (`access`), cloud-init and console host keys,
and the configuration step a Pulumi program runs (`configure`)."""
