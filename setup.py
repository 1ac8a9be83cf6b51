"""iterref-fairseq: generation by iterative refinement as a fairseq --user-dir plugin."""
from setuptools import find_packages, setup

setup(
    name="iterref-fairseq",
    version="0.1.0",
    description="Iterative-refinement generation (NAT, masked translation, LaNMT, FlexMDM, MGM, CVGAE) for fairseq",
    license="MIT",
    python_requires=">=3.8",
    packages=find_packages(include=["iterref_fairseq", "iterref_fairseq.*"]),
    # torch and fairseq are installed by scripts/install.sh (build order and version pins matter there).
    install_requires=["sacrebleu>=2.0", "sacremoses", "subword-nmt", "tqdm", "numpy"],
    entry_points={
        "console_scripts": [
            "iterref-prepare-bible=iterref_fairseq.cli.prepare_bible:main",
            "iterref-benchmark-decode=iterref_fairseq.cli.benchmark_decode:main",
            "iterref-make-star-graphs=iterref_fairseq.cli.make_star_graphs:main",
            "iterref-flexmdm-order=iterref_fairseq.cli.flexmdm_order:main",
            "iterref-flexmdm-molecules=iterref_fairseq.cli.flexmdm_molecules:main",
            "iterref-train-policy=iterref_fairseq.cli.train_policy:main",
            "iterref-plot-orders=iterref_fairseq.cli.plot_orders:main",
            "iterref-benchmark-masked=iterref_fairseq.cli.benchmark_masked:main",
            "iterref-generate-molecules=iterref_fairseq.cli.generate_molecules:main",
            "iterref-evaluate-molecules=iterref_fairseq.cli.evaluate_molecules:main",
            "iterref-plot-molecules=iterref_fairseq.cli.plot_molecules:main",
            "iterref-nat-step-nll=iterref_fairseq.cli.nat_step_nll:main",
        ]
    },
)
