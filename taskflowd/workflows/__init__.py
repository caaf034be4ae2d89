"""Workflows: DAGs of steps whose runs are ordinary executions (DESIGN.md §9).

`graph` validates a workflow's steps, `rules` decides what a run does next (both free of
I/O), `records` keeps workflows and runs in the database and advances a run inside the
transaction that records a step's end, and `service` is what the API calls.
"""
