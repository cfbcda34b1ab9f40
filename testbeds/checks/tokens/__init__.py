"""Token checks: the OIDC token issuer, its keys, and the tokens its clients get."""
