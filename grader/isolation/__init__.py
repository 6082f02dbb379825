"""Running student code where it cannot reach the grade: the sandbox (bubblewrap, rlimits, cgroups),
the child's worker, the wire protocol between them, and importing a student package under a
private name (``loading``).

Imports ``judging`` (feedback types, the call guard) and the base modules, never the course layer.
"""
