"""matplotlib for the project's plotting scripts: file output only, without matplotlib's debug chatter.

After fairseq is imported the root logger can stand at DEBUG, and matplotlib's font search and PIL's PNG writer
then print hundreds of DEBUG lines into every script that draws a figure; their loggers are set to WARNING here.
"""
import logging


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (PNG files, no display). Raises ImportError without matplotlib."""
    for noisy in ("matplotlib", "PIL"):  # before the import, which logs too
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
