"""The composition root: the node, the one feature table, the Control and Node services, the launcher."""
