"""Pure model and rules of taskflowd: no I/O, imports nothing else of ours."""
