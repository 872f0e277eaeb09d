"""The networks: one model per file, module names equal checkpoint keys."""
