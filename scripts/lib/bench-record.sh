# shellcheck shell=bash
# bench_record FILE COMMAND...: adds "recorded" to the benchmark result FILE (JSON): the command
# that measured it, the date (UTC), the machine (cores, memory, CPU model) and the commit (with
# a note when the checkout had uncommitted changes outside bench/). bench/README.md is generated
# from these (`cargo run -p kata-harness -- docs`).
bench_record() {
    local file=$1 repo commit machine
    shift
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- . ':!bench' 2>/dev/null)" ]; then
        commit="$commit (with uncommitted changes)"
    fi
    machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
    machine="$machine, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    python3 - "$file" "$*" "$(date -u +%F)" "$machine" "$commit" <<'PY'
import json, sys
path, command, date, machine, commit = sys.argv[1:]
with open(path) as f:
    value = json.load(f)
value.pop("recorded", None)
value["recorded"] = {"command": command, "date": date, "machine": machine, "commit": commit}
with open(path, "w") as f:
    json.dump(value, f, indent=2)
    f.write("\n")
PY
}
