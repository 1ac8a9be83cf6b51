from . import translation_refine  # noqa: F401
