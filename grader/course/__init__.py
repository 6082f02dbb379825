"""The instructor's course operations, all on top of ``grader.runner``: batch grading and its
gradebook, reports and class summaries, the student release and its CI, Gradescope, nbgrader and
the lab notebooks.
"""
