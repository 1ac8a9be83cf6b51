from . import translation_refine  # noqa: F401
from . import star_graph  # noqa: F401
from . import molecule_strings  # noqa: F401
from . import mol_graph  # noqa: F401
from . import conformer  # noqa: F401
