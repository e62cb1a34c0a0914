#!/usr/bin/env bash
# Install what tests/test_slurm.py needs for its one-node SLURM cluster (Debian/Ubuntu).
# Meant to be sourced or run from .ci/run as root; does nothing when the tools are there.
# Installs only packages (slurmctld, slurmd, slurm-client, munge and the basic plugins);
# it starts no daemon and writes no configuration: the test starts its own munged,
# slurmctld and slurmd with a private key and config in a temporary directory, on
# 127.0.0.1, and stops them by process id. No slurmdbd/mariadb: the test cluster runs
# without accounting (jobs are polled with squeue, records read with scontrol).
# Then run the test with UNET_REQUIRE_SLURM=1 so that it fails instead of skipping.

slurm_setup() {
    if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v munged >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1; then
        echo "slurm-setup: SLURM and munge already installed ($(slurmctld -V))"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "slurm-setup: not root, cannot apt-get install slurm-wlm munge" >&2
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "slurm-setup: no apt-get on this system" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq \
        && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || { echo "slurm-setup: apt-get install slurm-wlm munge failed" >&2; return 1; }
    echo "slurm-setup: installed $(slurmctld -V)"
}

slurm_setup
