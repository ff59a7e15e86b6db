#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the suite runner's tests and for trying `--launcher slurm`:
# Debian's slurmctld + slurmd (22.05) and munge, each with its own key, ports, state and log folders under one
# temp folder; proctrack/linuxproc, task/none, jobacct_gather/none, select/cons_tres (no cgroups, no database);
# the node is this host with the CPU count and memory `slurmd -C` reports. Needs root and the Debian packages
# (tools/setup_env.sh installs them: slurmctld slurmd slurm-client munge).
#
#   tools/slurm_local.sh start     # prints `export SLURM_CONF=...`: clients (sbatch, squeue, submitit) need it
#   tools/slurm_local.sh status    # sinfo + squeue
#   tools/slurm_local.sh stop      # stops the daemons; the folder stays for its logs until the next start
#
# SLURM_LOCAL_DIR (default /tmp/tinyvit-slurm) and SLURM_LOCAL_PORT (default 16817; slurmd takes the next) move it.
set -euo pipefail
DIR=${SLURM_LOCAL_DIR:-/tmp/tinyvit-slurm}
PORT=${SLURM_LOCAL_PORT:-16817}
CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF

need() {
  for bin in slurmctld slurmd sinfo munged; do
    command -v "$bin" >/dev/null || { echo "slurm_local: $bin not found: run tools/setup_env.sh (Debian packages slurmctld slurmd slurm-client munge)" >&2; exit 1; }
  done
  [ "$(id -u)" = 0 ] || { echo "slurm_local: the daemons run as root here (SlurmUser=root); run as root" >&2; exit 1; }
}

stop() {
  for name in slurmd slurmctld munged; do
    pidfile=$DIR/run/$name.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
  done
}

write_conf() {
  local host node
  host=$(hostname -s)
  # NodeName=<host> CPUs=... Boards=... SocketsPerBoard=... CoresPerSocket=... ThreadsPerCore=... RealMemory=...
  node=$(slurmd -C | head -1)
  cat > "$CONF" <<EOF
ClusterName=tinyvit-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$DIR/run/munge.socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  need
  stop
  rm -rf "$DIR"
  mkdir -p "$DIR"/{etc,state,spool,log,run,munge}
  chmod 700 "$DIR/munge"
  head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
  chmod 400 "$DIR/munge/munge.key"
  munged --force --key-file "$DIR/munge/munge.key" --socket "$DIR/run/munge.socket" \
    --pid-file "$DIR/run/munged.pid" --log-file "$DIR/log/munged.log" --seed-file "$DIR/munge/munge.seed"
  write_conf
  slurmctld -c -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 100); do  # the node registers within seconds
    state=$(sinfo -h -o %t 2>/dev/null || true)
    case "$state" in idle*|mix*|alloc*) break;; esac
    sleep 0.2
  done
  case "$state" in
    idle*|mix*|alloc*) ;;
    *) echo "slurm_local: the node did not come up (sinfo: '${state:-no answer}'); logs in $DIR/log" >&2; exit 1;;
  esac
  echo "export SLURM_CONF=$CONF"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
