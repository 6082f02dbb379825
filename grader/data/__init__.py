"""The data the labs train and are graded on: the MNIST IDX reader with its fixed split, and Lab 5's detection canvases.

Lowest layer with ``grader.paths`` and ``grader.text``: imports nothing else of the engine.
"""
