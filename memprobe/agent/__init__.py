"""Everything that runs inside the measured process: the control channel, the app's server,
the heap's attribution (sites, types, holders)."""
