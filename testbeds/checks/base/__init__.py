"""What the common role gives every node: names of every other node, time zone, trust."""
