"""How a case is declared and judged: the case model and its checks (``case``), array comparison and
its messages (``compare``), numerical gradients (``gradcheck``), helpers every lab's cases share
(``casekit``), the call guard that watches every call into student code (``guard``), and where
expected values come from (``expected``: committed fixtures or the live reference).

Imports only ``grader.paths``, ``grader.text`` and ``grader.data``: ``tests/<lab>/cases.py`` and the
sandboxed child can use it without the course machinery.
"""
