"""Matrix-free eigensolvers: matvec callables in, :class:`EigResult` out.

Pure torch; knows nothing about checkpoints, operators or the command line.
"""
