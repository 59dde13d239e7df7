"""The pure domain: values, events, deciders and status. No I/O, no clock."""
