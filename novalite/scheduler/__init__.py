"""The scheduler: filters, weighers and claims over its own view of the hosts."""
