from . import refinement_nat  # noqa: F401
