#!/usr/bin/env python
"""Star-graph data: ``python scripts/make_star_graphs.py --difficulty D --seed S --out DIR`` (see
iterref_fairseq/cli/make_star_graphs.py; same as the ``iterref-make-star-graphs`` console script)."""
import sys

from iterref_fairseq.cli.make_star_graphs import main

if __name__ == "__main__":
    sys.exit(main())
