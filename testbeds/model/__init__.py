"""The definition model, the first stage of every command: a testbed definition's schema
(`schema`), loading and checking its YAML (`loader`), composing testbeds into one
(`composition`), and the plan a command carries out (`plan`) with where each of its values
comes from (`provenance`). Nothing here knows a target."""
