# -*- coding: utf-8 -*-
# SIMULATED nvidia-ctk for the onprem_ai lab. This is NOT the NVIDIA Container Toolkit CLI.
# Installed as /usr/bin/nvidia-ctk by the simulated nvidia-container-toolkit-base package
# (build_repo.py bakes VERSION and COMMIT). Only `--version` is simulated.
"""Simulated nvidia-ctk (onprem_ai lab)."""

import sys

VERSION = "1.17.8"
COMMIT = "0000000000000000000000000000000000000000"


def main(argv=None):
    """Entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-v", "--version", "version"):
        print("NVIDIA Container Toolkit CLI version %s" % VERSION)
        print("commit: %s" % COMMIT)
        return 0
    sys.stderr.write("nvidia-ctk (SIMULATED for the onprem_ai lab): %s is not simulated\n" % " ".join(argv))
    return 1


if __name__ == "__main__":
    sys.exit(main())
