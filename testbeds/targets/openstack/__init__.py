"""The OpenStack target: its Pulumi program (`program`), the site's pre-flight against the
cloud (`preflight`), the restricted credentials it mints (`credentials`) and the `Target`
that runs the program and configures its nodes (`target`)."""
