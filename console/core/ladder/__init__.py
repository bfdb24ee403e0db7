"""The load ladder: measure an LLM endpoint under stepped concurrency and stop at the knee.

Pure pieces (``plan``, ``stats``, ``verdict``, ``chart``) decide and compute; ``client``
talks HTTP, ``machine`` samples the server process and the host, ``run`` drives the
steps and ``report`` writes the files.
"""
