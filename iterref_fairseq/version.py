"""The package version: the one place it is written (setup.py reads this file, ``iterref_fairseq.__version__``
imports it)."""
__version__ = "0.2.0"
