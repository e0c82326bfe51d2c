#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by slurm/cluster-up.sh (jobs are cancelled).
# Packages, configuration and the accounting database stay for the next start.
set -uo pipefail

if [[ $EUID -ne 0 ]]; then
    echo "cluster-down.sh: must run as root" >&2
    exit 1
fi

stop() {  # stop PROCESS_NAME: SIGTERM, then SIGKILL after 15 s
    pgrep -x "$1" >/dev/null || return 0
    echo "==> stopping $1"
    pkill -x "$1"
    for _ in $(seq 60); do pgrep -x "$1" >/dev/null || return 0; sleep 0.25; done
    pkill -9 -x "$1"
}

command -v scancel >/dev/null && scancel --full --quiet --user="$(id -un)" 2>/dev/null
stop slurmd
stop slurmctld
stop slurmdbd
if pgrep -x mariadbd >/dev/null; then
    echo "==> stopping MariaDB"
    mariadb-admin shutdown 2>/dev/null || stop mariadbd
fi
stop munged
echo "==> Slurm cluster stopped"
