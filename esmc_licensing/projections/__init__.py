"""Read models built from the event log, and the view values queries return."""
