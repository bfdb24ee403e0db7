"""Modal screens: enqueue, confirm, help, job details, quit."""
