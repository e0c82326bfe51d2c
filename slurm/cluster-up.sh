#!/usr/bin/env bash
# Install (when missing) and start a one-node Slurm cluster on this Debian machine:
# munge, MariaDB + slurmdbd (accounting, so that sacct and submitit see job states),
# slurmctld and slurmd. Idempotent: running it again leaves a running cluster alone.
# Stop it with slurm/cluster-down.sh. Needs root.
#
# Environment: PRIMEBENCH_SLURM_MEM_MB (node memory, default 80% of RAM).
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
    echo "cluster-up.sh: must run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

packages=(munge mariadb-server slurmctld slurmd slurmdbd slurm-client)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cpus=$(nproc)
mem_mb=${PRIMEBENCH_SLURM_MEM_MB:-$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)}
conf=/etc/slurm

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2
    shift 2
    for ((i = 0; i < limit * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    echo "cluster-up.sh: timed out waiting for $what" >&2
    return 1
}

# --- munge -------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then
    echo "==> starting munged"
    runuser -u munge -- /usr/sbin/munged
fi
wait_for 20 "munge" bash -c 'munge -n | unmunge'

# --- MariaDB for slurmdbd ------------------------------------------------------------
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! pgrep -x mariadbd >/dev/null && ! pgrep -x mysqld >/dev/null; then
    echo "==> starting MariaDB"
    [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null
    (mariadbd --user=mysql --bind-address=127.0.0.1 >/var/log/primebench-mariadb.log 2>&1 &)
fi
wait_for 60 "MariaDB" mariadb -e "select 1"
mariadb <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'primebench-slurmdb';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# --- Slurm configuration -------------------------------------------------------------
mkdir -p "$conf" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm
cat >"$conf/slurm.conf" <<CONF
ClusterName=primebench
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem_mb / cpus < 2000 ? mem_mb / cpus : 2000))
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$conf/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=primebench-slurmdb
StorageLoc=slurm_acct_db
CONF
chown slurm:slurm "$conf/slurmdbd.conf" && chmod 600 "$conf/slurmdbd.conf"

# --- daemons ---------------------------------------------------------------------------
if ! pgrep -x slurmdbd >/dev/null; then
    echo "==> starting slurmdbd"
    slurmdbd
fi
wait_for 60 "slurmdbd" sacctmgr -n list cluster
sacctmgr -i -Q add cluster primebench >/dev/null 2>&1 || true
if ! pgrep -x slurmctld >/dev/null; then
    echo "==> starting slurmctld"
    slurmctld
fi
wait_for 60 "slurmctld" scontrol ping
if ! pgrep -x slurmd >/dev/null; then
    echo "==> starting slurmd"
    slurmd -N localhost
fi
wait_for 60 "the node to register" bash -c "sinfo -h -N -o '%T' | grep -Eq 'idle|mixed|alloc'"
echo "==> one-node Slurm cluster up: $(sinfo -h -o '%P %D %c %m %T' | head -1)"
