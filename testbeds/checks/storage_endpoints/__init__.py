"""Storage endpoints: TLS from the testbed CA, both protocols, third-party copy, checksums."""
