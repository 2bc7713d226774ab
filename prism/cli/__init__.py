"""The ``prism`` command line: one module per command group, each thin (parse, call the
library, print). :mod:`.app` assembles them.

May import: every package.
"""
