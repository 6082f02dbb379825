"""The instructor's authoring tools: ``stubs`` (``solutions/`` -> ``labs/``, the drift and leak checks)
and ``fixtures`` (the public expected values and timings, generated from the reference).
"""
