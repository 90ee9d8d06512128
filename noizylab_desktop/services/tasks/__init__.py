"""Tasks: run a command or a typed job on the node that fits it, with live output, cancel and history."""
