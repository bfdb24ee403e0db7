"""The console's panes. Each renders model state; none runs a job or opens the database."""
