"""The ``toolformer`` command line: a thin click layer over the Python API."""
