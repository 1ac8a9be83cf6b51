#!/usr/bin/env python
"""NAT vs AR decoding benchmark (BLEU + speed side by side, JSON out); see iterref_fairseq/cli/benchmark_decode.py."""
from iterref_fairseq.cli.benchmark_decode import main

if __name__ == "__main__":
    main()
