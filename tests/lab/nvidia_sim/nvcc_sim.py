# -*- coding: utf-8 -*-
# SIMULATED nvcc for the onprem_ai lab. This is NOT the CUDA compiler: it only prints the
# real `nvcc --version` text. Installed as /usr/local/cuda-X.Y/bin/nvcc by the simulated
# cuda-nvcc-X-Y packages (build_repo.py bakes the constants below).
"""Simulated nvcc (onprem_ai lab)."""

import sys

RELEASE = "12.8"
NVCC_VERSION = "12.8.93"
BUILT_ON = "Fri_Feb_21_20:23:50_PST_2025"
BUILD = "cuda_12.8.r12.8/compiler.35583870_0"
YEAR = "2025"


def main(argv=None):
    """Entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-V", "--version") for a in argv):
        print("nvcc: NVIDIA (R) Cuda compiler driver")
        print("Copyright (c) 2005-%s NVIDIA Corporation" % YEAR)
        print("Built on %s" % BUILT_ON)
        print("Cuda compilation tools, release %s, V%s" % (RELEASE, NVCC_VERSION))
        print("Build %s" % BUILD)
        return 0
    sys.stderr.write("nvcc fatal   : No input files specified; use option --help for more information\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
