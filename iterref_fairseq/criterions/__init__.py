from . import refinement_nat_loss  # noqa: F401
