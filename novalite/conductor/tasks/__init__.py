"""The conductor's long-running tasks, one module each (Nova's ``conductor/tasks``):
:mod:`~novalite.conductor.tasks.migrate` (resize and cold migration)."""
