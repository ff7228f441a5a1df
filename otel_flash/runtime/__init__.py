"""Loading and calling user code: used by the executor and by the function processes (internal).

Modules: ``source`` (request code into a callable), ``targets`` (what a request calls),
``instances`` (kept class instances), ``serialization`` (arguments in, results out),
``failures`` (how a failure is told), ``workspace`` (an execution's working directory),
``modules`` (a request's own source files), ``interpreter`` (thread-mode state put back),
``calls`` (blocking steps performed with their limits), ``workers`` (the execution threads).
"""
