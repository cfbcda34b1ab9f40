"""Identity checks: the directory, every node resolving its accounts, keys and projects."""
