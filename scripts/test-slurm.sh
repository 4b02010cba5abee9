#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurm-wlm): starts munged, slurmctld and slurmd from a
# private configuration, runs a sharded NV ensemble as a 2-task job array, merges it and checks
# it equals the one-process run byte for byte; stops what it started. Prints "SKIP: <reason>"
# and exits 0 where Slurm is not installed or cannot be started (not root, no munge key, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
skip() { echo "SKIP: Slurm test: $*"; exit 0; }
for b in slurmctld slurmd munged sbatch sinfo; do
  command -v "$b" >/dev/null 2>&1 || skip "no $b (Debian: apt-get install slurm-wlm munge)"
done
[ "$(id -u)" = 0 ] || skip "starting munged and slurmd needs root"
[ -r /etc/munge/munge.key ] || skip "no /etc/munge/munge.key"
bin=${MAGPRIOR_CLI:-$PWD/target/debug/magprior}
[ -x "$bin" ] || cargo build -q --bin magprior

work=$(mktemp -d /tmp/magprior-slurm.XXXXXX)
host=$(hostname -s)
pids=()
cleanup() {
  for f in "$work"/slurmd.pid "$work"/slurmctld.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/state" "$work/spool" "$work/munge"
cat >"$work/slurm.conf" <<CONF
ClusterName=magprior-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
# our own munged on a private socket, so a system one is left alone
sock=$work/munge/munge.socket
munged --socket="$sock" --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log" \
  --seed-file="$work/munge/seed" --force 2>/dev/null || skip "munged would not start"
pids+=("$(cat "$work/munge/munged.pid")")
sed -i "1i AuthInfo=socket=$sock" "$work/slurm.conf"
slurmctld -i -f "$work/slurm.conf" || skip "slurmctld would not start (see its log)"
slurmd -f "$work/slurm.conf" || skip "slurmd would not start"
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o %t 2>/dev/null | grep -q idle || { tail -5 "$work/slurmctld.log" "$work/slurmd.log" || true; skip "the node did not become idle"; }

# the job: the demo's map, a 4-member ensemble
"$bin" demo --iters 1 --quiet --out "$work/demo" >/dev/null 2>&1
run=("$bin" nv reconstruct --bnv "$work/demo/bnv_measured.npy" --pixel 5nm
     --support "$work/demo/support.npy" --iters 5 --ensemble 4 --device cpu --quiet)
"${run[@]}" --out "$work/one" >/dev/null 2>&1
sbatch --wait --array=0-1 --output="$work/task-%a.log" --wrap "${run[*]} --out $work/split" >/dev/null \
  || { cat "$work"/task-*.log || true; echo "FAIL: the array job failed"; exit 1; }
"$bin" merge "$work/split" >/dev/null 2>&1
for f in magnetization.npy magnetization_std.npy magnetization_q05.npy magnetization_q95.npy \
         bnv_model.npy members/seed_3/magnetization.npy; do
  cmp -s "$work/one/$f" "$work/split/$f" || { echo "FAIL: $f differs"; exit 1; }
done
echo "Slurm test: a 2-task job array ran the ensemble's shares; merged, it equals the one-process run"
