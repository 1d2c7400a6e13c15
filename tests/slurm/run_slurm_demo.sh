#!/usr/bin/env bash
# Live SLURM test, run by `make test-slurm` as root (under `timeout -s KILL` there):
#   1. installs Debian's SLURM and starts a one-node cluster (recipe: ../shared/ENVIRONMENT.md);
#   2. runs the demo locally and through `--executor slurm --workflow-profile profiles/slurm`,
#      each in its own copy of the checkout, since results/ is relative to the working dir;
#   3. checks that the two runs' tables are byte-identical and that the jobs ran under SLURM;
#   4. stops the daemons by the PIDs in their pid files, whatever happened.
# ZSAR_SLURM_SMOKE=1 stops after one `sbatch --wrap hostname`: checks the cluster alone.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${ZSAR_VENV_BIN:-$REPO/.venv/bin}
CONF=/etc/slurm/slurm.conf
STATE=/var/lib/slurm
LOGS=/var/log/slurm
JOBCOMP=$LOGS/jobcomp.txt
CTLD_PID=$STATE/slurmctld/slurmctld.pid
SLURMD_PID=$STATE/slurmd/slurmd.pid
# slurm.conf carries this line, so a config that someone else wrote is never overwritten.
MARK="# written by zsar tests/slurm/run_slurm_demo.sh"
# Each Snakemake run gets this long; the Makefile's KILL at 900 s is the last resort and
# skips the trap, so the runs must end (and the trap run) well before it.
RUN_TIMEOUT=${ZSAR_SLURM_RUN_TIMEOUT:-330}

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PATH="$BIN:$PATH"
WORK=$(mktemp -d /tmp/zsar-slurm.XXXXXX)
MONITOR_PID=

log() { printf '[test-slurm %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { log "FAIL: $*"; exit 1; }

install_slurm() {
    log "installing slurmctld slurmd slurm-client"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client >/dev/null
    log "installed: $(dpkg-query -W -f '${Package} ${Version}  ' slurmctld slurmd slurm-client)"
}

write_slurm_conf() {
    if [[ -f $CONF ]] && ! grep -qxF "$MARK" "$CONF"; then
        fail "$CONF exists and was not written by this test; refusing to replace it"
    fi
    local host cpus mem_mib
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mib=$(( $(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$LOGS" "$(dirname "$CONF")"
    cat >"$CONF" <<EOF
$MARK
ClusterName=zsar-test
SlurmctldHost=$host
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
MinJobAge=300
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SchedulerType=sched/backfill
MpiDefault=none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    log "wrote $CONF: node $host, $cpus CPUs, $mem_mib MiB"
}

# Stops one daemon by the PID in its pid file, and only if that PID is the daemon.
stop_daemon() {
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop_cluster() {
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
}

# Removes the slurm.conf this script wrote. Left behind, it makes every SLURM command
# (and so every `import snakemake`, through the slurm plugin's `scontrol show config`)
# wait ~10 s for a controller that is gone; without it they fail at once.
remove_slurm_conf() {
    if [[ -f $CONF ]] && grep -qxF "$MARK" "$CONF"; then rm -f "$CONF"; fi
}

cleanup() {
    local rc=$?
    if [[ -n $MONITOR_PID ]]; then kill "$MONITOR_PID" 2>/dev/null || true; fi
    stop_cluster
    remove_slurm_conf
    if [[ $rc -eq 0 ]]; then
        rm -rf "$WORK"
    else
        log "kept $WORK for inspection (logs: $WORK/*.log)"
    fi
    exit "$rc"
}

start_cluster() {
    # A run killed by the Makefile's timeout skipped its trap: stop what it left running.
    stop_cluster
    : >"$JOBCOMP"
    # -c: start with no saved jobs or node state from an earlier run.
    /usr/sbin/slurmctld -c
    /usr/sbin/slurmd -c
    for _ in $(seq 60); do
        if [[ $(sinfo -h -o %t 2>/dev/null) == idle ]]; then
            log "cluster up: $(sinfo -h -o '%P %D %t %c CPUs %m MiB')"
            return
        fi
        sleep 1
    done
    tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" || true
    fail "the node did not become idle within 60 s"
}

# Job ids that the jobcomp file records as COMPLETED.
completed_jobs() { grep -o 'JobId=[0-9]* .*JobState=COMPLETED' "$JOBCOMP" | cut -d' ' -f1 | sort -u; }

smoke_job() {
    local id
    id=$(sbatch --parsable --wrap hostname --output "$WORK/hostname.out")
    for _ in $(seq 60); do
        if completed_jobs | grep -qx "JobId=$id"; then
            log "sbatch job $id COMPLETED on $(cat "$WORK/hostname.out")"
            return
        fi
        sleep 1
    done
    fail "sbatch job $id did not complete within 60 s"
}

# A copy of the checkout's files (tracked, and new files not ignored), without results/,
# resources/ or .venv: each run starts from nothing, as CI does.
copy_checkout() {
    mkdir -p "$1"
    git -C "$REPO" ls-files -z --cached --others --exclude-standard \
        | tar -C "$REPO" --null --ignore-failed-read -T - -cf - | tar -C "$1" -xf -
}

# The GPU rules (those the slurm profile sizes in `set-resources`), as --set-resources
# overrides for this node: it has no GPUs, and less memory than a real GPU job asks for.
gpu_rule_overrides() {
    python - "$REPO/profiles/slurm/config.yaml" <<'EOF'
import sys

import yaml

profile = yaml.safe_load(open(sys.argv[1]))
for rule in sorted(profile.get("set-resources", {})):
    print(f"{rule}:gpu=0 {rule}:mem_mb=2000 {rule}:runtime=30")
EOF
}

run_local() {
    log "local run in $WORK/local"
    copy_checkout "$WORK/local"
    (cd "$WORK/local" && timeout "$RUN_TIMEOUT" snakemake --workflow-profile profiles/default) \
        >"$WORK/local.log" 2>&1 || { tail -n 40 "$WORK/local.log"; fail "local run failed"; }
}

run_slurm() {
    log "SLURM run in $WORK/slurm"
    copy_checkout "$WORK/slurm"
    local overrides
    overrides=$(gpu_rule_overrides)
    [[ -n $overrides ]] || fail "profiles/slurm declares no GPU rules"
    # squeue, every 2 s, as evidence of what SLURM was running.
    (while sleep 2; do squeue -h -o '%i %P %T %C %m %k' | sed "s/^/$(date +%T) /"; done) \
        >"$WORK/squeue.log" 2>&1 &
    MONITOR_PID=$!
    # Overrides for this one-node test cluster only: the debug partition (as a user names
    # theirs), no account (there is no accounting), status checks from 2 s (MinJobAge is
    # 300 s), jobs no wider than the node, GPU rules without GPUs.
    # shellcheck disable=SC2086
    (cd "$WORK/slurm" && timeout "$RUN_TIMEOUT" snakemake \
        --executor slurm --workflow-profile profiles/slurm \
        --default-resources slurm_partition=debug mem_mb=1000 runtime=30 \
        --slurm-no-account --slurm-init-seconds-before-status-checks 2 \
        --max-threads "$(nproc)" --set-resources $overrides) \
        >"$WORK/slurm.log" 2>&1 || {
        tail -n 60 "$WORK/slurm.log"
        find "$WORK/slurm/.snakemake/slurm_logs" -name '*.log' -exec tail -n 20 {} + 2>/dev/null || true
        fail "SLURM run failed"
    }
    kill "$MONITOR_PID" 2>/dev/null || true
    MONITOR_PID=
}

check_jobs_ran_on_slurm() {
    local submitted completed
    submitted=$(grep -c 'submitted with SLURM jobid' "$WORK/slurm.log" || true)
    completed=$(completed_jobs | wc -l)
    log "squeue while the workflow ran (time, job id, partition, state, CPUs, memory, rule):"
    grep -v '^$' "$WORK/squeue.log" | awk '!seen[$2 $4]++' | head -n 40
    log "jobcomp records ($JOBCOMP):"
    tr ' ' '\n' <"$JOBCOMP" | awk -F= '
        /^JobId=/ { if (line) print line; line = "" }
        /^(JobId|Name|JobState|Partition|StartTime|EndTime|NodeList|ProcCnt|WorkDir)=/ {
            line = line $0 " "
        }
        END { if (line) print line }' 
    # The smoke job is one of the completed ones.
    [[ $submitted -gt 0 ]] || fail "Snakemake submitted no job to SLURM"
    [[ $completed -ge $((submitted + 1)) ]] \
        || fail "$submitted jobs submitted but $completed completed in jobcomp"
    ! grep -q 'JobState=\(FAILED\|CANCELLED\|TIMEOUT\|NODE_FAIL\|OUT_OF_MEMORY\)' "$JOBCOMP" \
        || fail "a SLURM job did not complete"
    log "$submitted workflow jobs submitted to SLURM, all COMPLETED"
}

compare_tables() {
    local table other count=0
    for table in "$WORK/local/results/tables/"*; do
        other="$WORK/slurm/results/tables/$(basename "$table")"
        if ! cmp -s "$table" "$other"; then
            diff -u "$table" "$other" | head -n 40 || true
            fail "$(basename "$table") differs between the local and the SLURM run"
        fi
        count=$((count + 1))
    done
    [[ $count -ge 3 ]] || fail "expected results.{md,csv,tex}, found $count tables"
    log "the $count tables of the local and the SLURM run are identical:"
    cat "$WORK/slurm/results/tables/results.md"
}

main() {
    [[ $(id -u) -eq 0 ]] || fail "needs root (apt-get, slurmctld, slurmd)"
    trap cleanup EXIT
    local start=$SECONDS
    install_slurm
    write_slurm_conf
    start_cluster
    smoke_job
    if [[ ${ZSAR_SLURM_SMOKE:-0} == 1 ]]; then return; fi
    run_local
    log "local run took $((SECONDS - start)) s so far"
    run_slurm
    check_jobs_ran_on_slurm
    compare_tables
    log "PASS in $((SECONDS - start)) s"
}

main "$@"
