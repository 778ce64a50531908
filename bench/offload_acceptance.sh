#!/usr/bin/env bash
# offload_acceptance.sh: every figure of issue 14's acceptance list (the offload engine) on one GPU
# machine, in three parts of one device call each (at most ~9.5 minutes; every comparison is measured
# side by side inside one part):
#   part 1  LLaMA-2-7B shape, batch 16 x 512, owlore, 100 steps: resident (--offload none, no cap),
#           --gpu-mem 8GiB, --gpu-mem 24GiB --offload auto; `owlore probe` (when this build has it) and
#           PyTorch's page-locked copy rate, for the achieved H2D GB/s (bytes_up / train_seconds)
#   part 2  LLaMA-3-8B shape under --gpu-mem 24GiB --offload auto beside the PyTorch recipe
#           (torch_reference_bench.py, 20 steps: steady = median of steps 3-20) and under --gpu-mem
#           10GiB; GPU bit-exactness, 7B shape: --offload host and nvme against resident, 6 steps with a
#           resample and projector refreshes, every loss and gradient norm compared bit for bit;
#           LLaMA-2-13B shape, 30 steps under --gpu-mem 24GiB (host home)
#   part 3  LLaMA-2-13B shape under --gpu-mem 10GiB --host-mem 8GiB --nvme-dir (most blocks from the
#           store file; 30 steps, fewer when the disk is too slow for 30 in the part's time, said in the
#           table), the store's read GB/s against the disk's O_DIRECT rate (`owlore probe`'s, else dd's);
#           a 30B-class preset (llama-33b) under --gpu-mem 24GiB, in part 1
# Each run also gets `owlore plan` with the same flags (its --json when the build has it), for the
# plan's predicted peak and tokens/s against the measured ones.
#
# usage, on the GPU machine, from the repository root, with build-cuda/owlore, build-cuda/devlib and
# .device made here by scripts/device-bundle.sh and carried (about 15 MiB):
#   bench/offload_acceptance.sh 1|2|3        one part; results in $OUT (default bench-out). The first
#       call may begin with `scripts/gpu-tests.sh test_cuda_offload;` (carry build-cuda/tests/test_cuda_offload)
#   bench/offload_acceptance.sh all          the three parts one after another (no time limit)
#   DRY=1 bench/offload_acceptance.sh 1|2|3|all   prints each part's commands with time estimates
#   bench/offload_acceptance.sh table FILE...     the final table from parts' partN.jsonl (anywhere)
# What a part leaves in $OUT (3 files): partN.jsonl (one JSON record per measurement, appended as it
# comes), partN.log (the console), partN.tgz (every run's log, metrics.jsonl, plan and summary; made
# again after each run, so a call stopped at its time limit still returns what finished; the parts are
# separate calls, so a machine taken back loses only the part in flight).
# Environment: OUT; NVME_DIR (store directory on a real disk, default /tmp/nv; a tmpfs is refused in
# favour of /var/tmp/nv, then build-cuda/nv); HOST_MEM (the page-locked host memory streamed blocks may
# take, default 48GiB: these machines' MemAvailable can read low while memory grows, so the default
# of --host-mem is not relied on; HOST_MEM_33B, default 80GiB, for a 30B-class preset); PART_BUDGET_S
# (seconds a part may take, default 560); OWLORE_BIN; TORCH_BENCH (the PyTorch reference script).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-bench-out}
DRY=${DRY:-0}
BIN=${OWLORE_BIN:-$ROOT/build-cuda/owlore}
BUDGET=${PART_BUDGET_S:-560}
HOST_MEM=${HOST_MEM:-48GiB}
TORCH_BENCH=${TORCH_BENCH:-$ROOT/.device/shared/bench/torch_reference_bench.py}
export LD_LIBRARY_PATH="$ROOT/build-cuda/devlib:${LD_LIBRARY_PATH:-}"
export OWLORE_BIN=$BIN PYTHONUNBUFFERED=1
# the recipe of the README's GPU figures (bench/gpu_bench.sh adds --data synthetic, the OWL ratios,
# --save-model=false --val-split 0 --device cuda --log-every 10)
RECIPE=(--batch-size 16 --block-size 512 --save-every -1 --projector randomized --interval 50)
PART=0
START=$SECONDS
WORK=
NV=

# ---- records and output ----

say() {
  if [ "$DRY" = 1 ]; then printf '%s\n' "$*"; else printf '%s\n' "$*" | tee -a "$OUT/part$PART.log"; fi
}

# One JSON record (a python dict literal's keys and values as KEY=VALUE strings, values JSON) to partN.jsonl.
record() {
  python3 - "$OUT/part$PART.jsonl" "$PART" "$@" <<'EOF'
import json, sys
path, part, kv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rec = {"part": part}
for item in kv:
    k, v = item.split("=", 1)
    try:
        rec[k] = json.loads(v)
    except ValueError:
        rec[k] = v
with open(path, "a") as f:
    f.write(json.dumps(rec) + "\n")
EOF
}

note() {
  say "NOTE $*"
  [ "$DRY" = 1 ] || record kind=note "text=$(json_str "$*")"
}

json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# What finished so far, tarred into $OUT (atomically: a machine taken back leaves the previous tarball).
pack() {
  [ "$DRY" = 1 ] && return
  tar -czf "$OUT/part$PART.tgz.tmp" -C "$WORK" . 2>/dev/null && mv -f "$OUT/part$PART.tgz.tmp" "$OUT/part$PART.tgz"
}

left() { echo $((BUDGET - (SECONDS - START))); }

# DRY=1: one planned step with its time estimate (summed per part).
EST_TOTAL=0
dry() {
  printf '  [~%4ss] %s\n' "$1" "$2"
  EST_TOTAL=$((EST_TOTAL + $1))
}

# ---- one training run ----

# plan NAME SHAPE FLAGS...: owlore plan with the run's flags (JSON when the build has --json).
plan() {
  local name=$1 shape=$2
  shift 2
  # (the help text is read whole: grep -q would stop reading, and under pipefail the writer's SIGPIPE
  # made this test fail, so the H100 runs of 2026-12-05 got no plan JSON)
  if grep -q -- '--json' <<<"$("$BIN" plan --help 2>&1)"; then
    "$BIN" plan --model "$shape" --data synthetic "$@" --json >"$WORK/$name.plan.json" 2>"$WORK/$name.plan.err"
  fi
  "$BIN" plan --model "$shape" --data synthetic "$@" >"$WORK/$name.plan.txt" 2>&1
}

# run NAME SHAPE STEPS EST_S FLAGS...: bench/gpu_bench.sh (nvidia-smi peaks, the RESULT line) with a
# time guard: skipped when the part has less than EST_S + 20 s left, stopped (SIGTERM, then SIGKILL)
# 15 s before the part's budget ends. Records the BENCH line, the plan and the wall time.
run() {
  local name=$1 shape=$2 steps=$3 est=$4
  shift 4
  local cmd=(bench/gpu_bench.sh "$name" "$shape" owlore "$steps" "$@")
  if [ "$DRY" = 1 ]; then
    dry "$est" "${cmd[*]}"
    return 0
  fi
  local budget
  budget=$(left)
  if [ "$budget" -lt $((est + 20)) ]; then
    note "$name SKIPPED: $budget s left in part $PART, the run needs ~$est s"
    record kind=run "name=\"$name\"" "shape=\"$shape\"" "skipped=true" "est_s=$est"
    return 1
  fi
  plan "$name" "$shape" "$@"
  rm -rf "/tmp/run-$name" # gpu_bench.sh's run directory, from an earlier try on this machine
  say "== $name: ${cmd[*]}  (~$est s, $budget s left)"
  local t0=$SECONDS
  OUT=$WORK timeout -k 10 $((budget - 15)) "${cmd[@]}" >"$WORK/$name.bench" 2>&1
  local rc=$? wall=$((SECONDS - t0))
  cp "/tmp/run-$name/summary.json" "$WORK/$name.summary.json" 2>/dev/null
  cat "$WORK/$name.bench" | tee -a "$OUT/part$PART.log"
  python3 - "$OUT/part$PART.jsonl" "$PART" "$name" "$shape" "$steps" "$rc" "$wall" "$est" "$WORK" "$*" <<'EOF'
import json, sys, os
path, part, name, shape, steps, rc, wall, est, work, flags = sys.argv[1:]
rec = {"part": int(part), "kind": "run", "name": name, "shape": shape, "steps": int(steps), "rc": int(rc),
       "wall_s": int(wall), "est_s": int(est), "flags": flags, "timed_out": int(rc) in (124, 137)}
bench = None
for line in open(os.path.join(work, name + ".bench"), errors="replace"):
    if line.startswith("BENCH {"):
        bench = json.loads(line[6:])
rec["bench"] = bench
pj = os.path.join(work, name + ".plan.json")
try:
    rec["plan"] = json.load(open(pj))
except (OSError, ValueError):
    rec["plan"] = None
with open(path, "a") as f:
    f.write(json.dumps(rec) + "\n")
EOF
  pack
  [ "$rc" -eq 0 ]
}

# ---- setup of a part ----

preflight() {
  mkdir -p "$OUT"
  WORK=/tmp/offload-acceptance/part$PART
  rm -rf "$WORK" && mkdir -p "$WORK"
  : >"$OUT/part$PART.jsonl"
  : >"$OUT/part$PART.log"
  if [ ! -x "$BIN" ]; then
    say "no $BIN (hint: scripts/device-bundle.sh, then carry build-cuda/owlore, build-cuda/devlib and .device)"
    exit 2
  fi
  local gpu mem
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)
  mem=$(grep -E 'MemTotal|MemAvailable' /proc/meminfo | tr -s ' ' | tr '\n' ' ')
  say "part $PART on $gpu; $("$BIN" version 2>&1 | head -1); $(nproc) cores; $mem"
  record kind=machine "gpu=$(json_str "$gpu")" "meminfo=$(json_str "$mem")"
}

# The store directory: NVME_DIR unless it is a tmpfs (RAM, not a disk) or lacks room for the 13B store.
pick_nvme_dir() {
  local need_gib=$1 d fs avail
  if [ "$DRY" = 1 ]; then
    dry 0 "the store directory: \${NVME_DIR:-/tmp/nv}, /var/tmp/nv or build-cuda/nv (a disk, $need_gib GiB free)"
    NV='$NV'
    return 0
  fi
  for d in "${NVME_DIR:-/tmp/nv}" /var/tmp/nv "$ROOT/build-cuda/nv"; do
    mkdir -p "$d" 2>/dev/null || continue
    fs=$(stat -f -c %T "$d" 2>/dev/null)
    avail=$(($(df --output=avail -k "$d" | tail -1) / 1048576))
    if [ "$fs" = tmpfs ] || [ "$fs" = ramfs ]; then
      note "$d is on $fs (memory, not a disk): not used for the store"
      continue
    fi
    if [ "$avail" -lt "$need_gib" ]; then
      note "$d ($fs) has $avail GiB free, the store needs ~$need_gib GiB: not used"
      continue
    fi
    NV=$d
    say "store directory $NV: $fs, $avail GiB free"
    record kind=nvme_dir "dir=\"$NV\"" "fs=\"$fs\"" "free_gib=$avail"
    return 0
  done
  note "no directory on a disk with $need_gib GiB free for the store file"
  return 1
}

# owlore probe (when this build has it): its page-locked copy rates and the disk rate of DIR ($NV or /tmp).
owlore_probe() {
  local dir=${NV:-/tmp}
  if [ "$DRY" = 1 ]; then
    dry 15 "$BIN probe --json --nvme-dir $dir  (when this build has the command)"
    return
  fi
  if ! "$BIN" probe --help >/dev/null 2>&1; then
    note "owlore probe: not in this build (skipped; PyTorch's copy rates and dd's disk rate stand in)"
    return
  fi
  timeout 120 "$BIN" probe --json --nvme-dir "$dir" >"$WORK/probe.json" 2>"$WORK/probe.err" ||
    timeout 120 "$BIN" probe --json >"$WORK/probe.json" 2>>"$WORK/probe.err"
  say "probe: $(tr -d '\n\t' <"$WORK/probe.json" | cut -c1-400)"
  python3 - "$OUT/part$PART.jsonl" "$PART" "$WORK/probe.json" "$dir" <<'EOF'
import json, sys
path, part, pj, d = sys.argv[1:]
try:
    p = json.load(open(pj))
except (OSError, ValueError) as e:
    p = {"error": str(e)}
with open(path, "a") as f:
    f.write(json.dumps({"part": int(part), "kind": "probe", "dir": d, "probe": p}) + "\n")
EOF
  pack
}

# PyTorch's page-locked copy rates (1 GiB, best of 4): a reference beside probe's.
torch_rates() {
  if [ "$DRY" = 1 ]; then
    dry 15 "python3: PyTorch page-locked H2D and D2H copies of 1 GiB"
    return
  fi
  timeout 120 python3 - "$OUT/part$PART.jsonl" "$PART" <<'EOF' 2>&1 | tee -a "$OUT/part$PART.log"
import json, sys, time
import torch
path, part = sys.argv[1], int(sys.argv[2])
n = 1 << 30
h = torch.empty(n, dtype=torch.uint8, pin_memory=True)
d = torch.empty(n, dtype=torch.uint8, device="cuda")
rates = {}
for what, src, dst in (("h2d", h, d), ("d2h", d, h)):
    best = 0.0
    for _ in range(4):
        torch.cuda.synchronize()
        t = time.perf_counter()
        dst.copy_(src, non_blocking=True)
        torch.cuda.synchronize()
        best = max(best, n / (time.perf_counter() - t) / 1e9)
    rates["torch_" + what + "_gbps"] = round(best, 2)
print("torch page-locked copies (1 GiB, best of 4):", rates)
with open(path, "a") as f:
    f.write(json.dumps({"part": part, "kind": "copy_rates", **rates}) + "\n")
EOF
  pack
}

# The disk's O_DIRECT write and read rates (4 GiB with dd), for the store's read GB/s.
disk_rates() {
  if [ "$DRY" = 1 ]; then
    dry 20 "dd: 4 GiB written and read with O_DIRECT in the store directory"
    return
  fi
  local f=$NV/dd-rate.bin t0 t1 t2
  t0=$EPOCHREALTIME
  if ! timeout 120 dd if=/dev/zero of="$f" bs=64M count=64 oflag=direct conv=fsync status=none ||
    { t1=$EPOCHREALTIME && ! timeout 120 dd if="$f" of=/dev/null bs=64M iflag=direct status=none; }; then
    rm -f "$f"
    note "dd with O_DIRECT failed in $NV: no disk rate (the store-file run assumes 3 GB/s read, 2 GB/s write)"
    return
  fi
  t2=$EPOCHREALTIME
  rm -f "$f"
  local w r
  w=$(python3 -c "print(round(4 * 2**30 / ($t1 - $t0) / 1e9, 2))")
  r=$(python3 -c "print(round(4 * 2**30 / ($t2 - $t1) / 1e9, 2))")
  say "disk (dd, O_DIRECT, 4 GiB): write $w GB/s, read $r GB/s"
  record kind=disk_rates "dd_write_gbps=$w" "dd_read_gbps=$r"
  DISK_READ_GBPS=$r DISK_WRITE_GBPS=$w
  pack
}

# ---- the parts ----

part1() {
  echo "part 1: LLaMA-2-7B shape, 16 x 512, owlore, 100 steps (estimates: 7B resident 0.63 s/step; streamed"
  echo "  7B ~27 frozen blocks x 2 x 0.40 GB = 21 GB/step at ~50 GB/s beside 0.63 s of compute)"
  owlore_probe
  torch_rates
  run l7-none llama2-7b 100 80 "${RECIPE[@]}" --offload none
  run l7-8g llama2-7b 100 135 "${RECIPE[@]}" --gpu-mem 8GiB --offload auto --host-mem "$HOST_MEM"
  run l7-24g-auto llama2-7b 100 80 "${RECIPE[@]}" --gpu-mem 24GiB --offload auto --host-mem "$HOST_MEM"
  local big
  big=$(big_preset)
  if [ -n "$big" ]; then # 60 blocks of 1.07 GB: ~3 s a step from host memory (owlore plan), its setup pins 64 GB
    run l33-24g "$big" 6 150 "${RECIPE[@]}" --gpu-mem 24GiB --offload auto --host-mem "${HOST_MEM_33B:-80GiB}"
  else
    note "no 30B-class preset in configs/models ($(ls configs/models | sed 's/\.json//' | tr '\n' ' '))." \
      "The 33B run is not made"
  fi
}

# Losses and gradient norms of x7-host and x7-nvme against x7-none, as metrics.jsonl prints them.
compare_exact() {
  if [ "$DRY" = 1 ]; then
    echo "  compare the metrics.jsonl losses and gradient norms of x7-host and x7-nvme with x7-none"
    return
  fi
  python3 - "$OUT/part$PART.jsonl" "$PART" "$WORK" <<'EOF' | tee -a "$OUT/part$PART.log"
import json, os, sys
path, part, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def steps(name):
    p = os.path.join(work, name + ".metrics.jsonl")
    if not os.path.exists(p):
        return None
    out = []
    for line in open(p):
        if '"loss"' in line and '"step"' in line:
            r = json.loads(line)  # cJSON prints doubles that read back to the same bits
            out.append((r["step"], r["loss"].hex() if isinstance(r["loss"], float) else r["loss"],
                        r["grad_norm"].hex() if isinstance(r["grad_norm"], float) else r["grad_norm"]))
    return out
ref = steps("x7-none")
rec = {"part": part, "kind": "exact", "steps": len(ref) if ref else 0}
for mode in ("host", "nvme"):
    got = steps("x7-" + mode)
    rec[mode] = None if ref is None or got is None else (got == ref and len(ref) > 0)
    if got and ref:
        rec[mode + "_first_diff_step"] = next((a[0] for a, b in zip(ref, got) if a != b), None)
print("7B bit-exactness (losses and gradient norms of every step):", rec)
with open(path, "a") as f:
    f.write(json.dumps(rec) + "\n")
EOF
  pack
}

part2() {
  echo "part 2: LLaMA-3-8B shape (README: 0.82 s/step resident under 24GiB; PyTorch first step ~45 s of SVDs),"
  echo "  then the 7B bit-exactness runs (4 x 512, 6 steps: a resample at step 3, projector refreshes every 2 of a"
  echo "  tensor's steps; the nvme run reads ~22 GB per step from its 13 GB store) and 13B under 24GiB, in the"
  echo "  order of what matters most when a part's time runs short (the runs after it are skipped)"
  run l3-24g-auto llama3-8b 60 75 "${RECIPE[@]}" --gpu-mem 24GiB --offload auto --host-mem "$HOST_MEM"
  torch_ref
  local x=(--batch-size 4 --block-size 512 --save-every -1 --projector randomized --interval 3 --update-gap 2)
  run x7-none llama2-7b 6 30 "${x[@]}" --offload none
  run x7-host llama2-7b 6 40 "${x[@]}" --offload host --host-mem "$HOST_MEM"
  run l13-24g llama2-13b 30 90 "${RECIPE[@]}" --gpu-mem 24GiB --offload auto --host-mem "$HOST_MEM"
  pick_nvme_dir 20 || NV=
  if [ -n "${NV:-}" ]; then
    run x7-nvme llama2-7b 6 75 "${x[@]}" --offload nvme --nvme-dir "$NV"
    [ "$DRY" = 1 ] || rm -f "$NV"/*.owstore "$NV"/*.owstore.lock
  fi
  compare_exact
  run l3-10g llama3-8b 30 60 "${RECIPE[@]}" --gpu-mem 10GiB --offload auto --host-mem "$HOST_MEM"
}

torch_ref() {
  local cmd=(python3 "$TORCH_BENCH" owlore llama3-8b --steps 20 --interval 50)
  if [ "$DRY" = 1 ]; then
    dry 85 "${cmd[*]}"
    return
  fi
  if [ ! -f "$TORCH_BENCH" ]; then
    note "no $TORCH_BENCH (hint: scripts/device-bundle.sh copies it into .device; carry .device)"
    return
  fi
  local budget
  budget=$(left)
  if [ "$budget" -lt 105 ]; then
    note "torch-l3 SKIPPED: $budget s left"
    return
  fi
  say "== torch-l3: ${cmd[*]}"
  local t0=$SECONDS
  timeout -k 10 $((budget - 15)) "${cmd[@]}" >"$WORK/torch-l3.log" 2>&1
  local rc=$? wall=$((SECONDS - t0))
  grep '^RESULT ' "$WORK/torch-l3.log" | tee -a "$OUT/part$PART.log"
  local line
  line=$(grep '^RESULT ' "$WORK/torch-l3.log" | tail -1 | cut -c8-)
  record kind=torch name=torch-l3 "rc=$rc" "wall_s=$wall" "result=${line:-null}"
  pack
}

part3() {
  echo "part 3: LLaMA-2-13B shape from the store file (0.634 GB blocks, 40 of them: a 25.4 GB store written at"
  echo "  setup; ~2 x 27 blocks = 34 GB read per step beside ~1.3 s of compute): its steps are fitted to dd's rates"
  pick_nvme_dir 32 || NV=
  if [ -n "${NV:-}" ]; then
    disk_rates
    owlore_probe
    local steps=30 step_s setup
    # per step ~34 GB from the store at the read rate (at least the compute's 1.4 s); setup writes 25.4 GB
    step_s=$(python3 -c "print(max(2, round(34 / max(${DISK_READ_GBPS:-3}, 0.1) * 1.1 + 0.5)))")
    setup=$(python3 -c "print(round(40 + 25.4 / max(${DISK_WRITE_GBPS:-2}, 0.1)))")
    if [ "$DRY" != 1 ]; then
      local fit=$((($(left) - 60 - setup) / step_s))
      [ "$fit" -lt 30 ] && steps=$((fit < 3 ? 3 : fit))
      [ "$steps" -lt 30 ] &&
        note "l13-10g-nvme runs $steps steps, not 30: at ~$step_s s/step (disk ${DISK_READ_GBPS:-?} GB/s)" \
          "30 would not fit the part"
    else
      echo "  (estimate for a disk of 3 GB/s read, 2 GB/s write; the part fits the steps to the rates dd measures)"
    fi
    run l13-10g-nvme llama2-13b "$steps" $((setup + steps * step_s)) "${RECIPE[@]}" --gpu-mem 10GiB --host-mem 8GiB \
      --offload auto --nvme-dir "$NV"
    [ "$DRY" = 1 ] || rm -f "$NV"/*.owstore "$NV"/*.owstore.lock
  fi
}

# A preset of 30B class (hidden size >= 6144 and >= 48 layers), if configs/models has one.
big_preset() {
  python3 - configs/models <<'EOF'
import json, os, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    c = json.load(open(os.path.join(d, f)))
    if c.get("hidden_size", 0) >= 6144 and c.get("num_hidden_layers", 0) >= 48:
        print(f[:-5])
        break
EOF
}

# ---- the table ----

table() {
  python3 - "$@" <<'EOF'
import json, sys
recs = []
for p in sys.argv[1:]:
    for line in open(p):
        line = line.strip()
        if line:
            recs.append(json.loads(line))
runs = {r["name"]: r for r in recs if r.get("kind") == "run"}
GiB = 2**30
def g(r, *keys, default=None):
    for k in keys:
        if not isinstance(r, dict) or k not in r:
            return default
        r = r[k]
    return r
def fmt(x, f="{:.2f}"):
    return "-" if x is None else (f.format(x) if isinstance(x, (int, float)) else str(x))
def h2d(b):
    up, t = g(b, "offload", "bytes_up"), g(b, "train_seconds")
    return up / t / 1e9 if up and t else None
print("| run | shape | flags | rc | steady tok/s | avg tok/s | arena peak GiB | reserved + ctx GiB | smi proc MiB "
      "| homes dev/host/disk | fetches | GB up | H2D GB/s | store GB/s (io) | plan peak err | plan tok/s err |")
print("|" + " --- |" * 16)
for name, r in runs.items():
    b = r.get("bench")
    if r.get("skipped") or not b:
        why = "skipped" if r.get("skipped") else ("timed out" if r.get("timed_out") else "failed")
        print(f"| {name} | {r.get('shape')} | {r.get('flags', '')[-60:]} | {r.get('rc', '-')} | {why} |" + " |" * 11)
        continue
    o = b.get("offload") or {}
    resv = (b.get("arena_peak_reserved_bytes", 0) + b.get("device_context_bytes", 0)) / GiB
    plan = r.get("plan") or {}
    pe = (plan["peak_bytes"] / b["peak_bytes"] - 1) * 100 if plan.get("peak_bytes") and b.get("peak_bytes") else None
    pt = (plan["predicted_tokens_per_s"] / b["avg_tokens_per_s"] - 1) * 100 \
        if plan.get("predicted_tokens_per_s") and b.get("avg_tokens_per_s") else None
    homes = "/".join(str(int(o.get(k, 0))) for k in ("device", "host", "disk")) if o else "all device"
    disk = f"{o['disk_read_gbps']:.2f} ({o.get('disk_io', '')})" if o.get("disk_reads") else "-"
    recipe = "--batch-size 16 --block-size 512 --save-every -1 --projector randomized --interval 50"
    flags = r.get("flags", "").replace(recipe, "recipe")
    print(f"| {name} | {r['shape']} | {flags} | {r['rc']} | {fmt(b.get('tokens_per_s'), '{:,.0f}')} "
          f"| {fmt(b.get('avg_tokens_per_s'), '{:,.0f}')} | {fmt(b.get('peak_bytes', 0) / GiB)} | {fmt(resv)} "
          f"| {fmt(b.get('nvidia_smi_process_peak_mib'), '{:,}')} | {homes} | {fmt(o.get('fetches'), '{:.0f}')} "
          f"| {fmt(o['bytes_up'] / 1e9 if o.get('bytes_up') else None, '{:.0f}')} | {fmt(h2d(b))} | {disk} "
          f"| {fmt(pe, '{:+.1f} %')} | {fmt(pt, '{:+.1f} %')} |")
print()
for r in recs:
    if r.get("kind") in ("note", "probe", "copy_rates", "disk_rates", "torch", "exact", "nvme_dir", "machine"):
        print(f"part {r['part']} {r['kind']}: " + json.dumps({k: v for k, v in r.items() if k not in ("part", "kind")}))
print()
# the acceptance list, checked against the figures above
def avg(n):
    return g(runs.get(n), "bench", "avg_tokens_per_s")
def steady(n):
    return g(runs.get(n), "bench", "tokens_per_s")
probes = [r["probe"] for r in recs if r.get("kind") == "probe" and isinstance(r.get("probe"), dict)]
rates = next((r for r in recs if r.get("kind") == "copy_rates"), {})
disk = next((r for r in recs if r.get("kind") == "disk_rates"), {})
torch = next((r for r in recs if r.get("kind") == "torch"), {})
exact = next((r for r in recs if r.get("kind") == "exact"), {})
def probe_key(*words, last=False):
    # the first probe's copy rates; the last one's disk rate (part 3 probes the store's directory)
    for p in (reversed(probes) if last else probes):
        for k, v in p.items():
            if all(w in k for w in words) and isinstance(v, (int, float)):
                return v
    return None
def check(what, ok, detail):
    print(f"- [{'x' if ok else ' '}] {what}: {detail}" if ok is not None else f"- [?] {what}: {detail}")
b8 = g(runs.get("l7-8g"), "bench") or {}
fits8 = None
if b8:
    used = (b8.get("arena_peak_reserved_bytes", 0) + b8.get("device_context_bytes", 0)) / GiB
    smi = b8.get("nvidia_smi_process_peak_mib") or None  # 0: nvidia-smi gave nothing
    fits8 = used <= 8 and smi <= 8192 if smi else None
    check("7B under --gpu-mem 8GiB fits", fits8, f"arena reserved + context {used:.2f} GiB, nvidia-smi "
          f"{b8.get('nvidia_smi_process_peak_mib')} MiB for the process")
r = avg("l7-8g") / avg("l7-none") if avg("l7-8g") and avg("l7-none") else None
check("7B 8GiB avg tokens/s >= 90 % of resident", r is not None and r >= 0.9 if r else None, f"{fmt(r, '{:.3f}')}x")
hp = probe_key("h2d")
check("7B 8GiB achieved H2D GB/s vs probe", None, f"{fmt(h2d(b8))} GB/s achieved (bytes_up / train_seconds, setup "
      f"fills included) vs probe {fmt(hp)} GB/s, PyTorch page-locked {fmt(rates.get('torch_h2d_gbps'))} GB/s")
r = avg("l7-24g-auto") / avg("l7-none") if avg("l7-24g-auto") and avg("l7-none") else None
check("7B 24GiB auto avg tokens/s >= 1.15x resident", r >= 1.15 if r else None, f"{fmt(r, '{:.3f}')}x")
t = g(torch, "result", "tokens_per_s")
r = steady("l3-24g-auto") / t if steady("l3-24g-auto") and t else None
r0 = steady("l3-24g-auto") / 10422 if steady("l3-24g-auto") else None
check("LLaMA-3-8B 24GiB auto steady >= 1.2x PyTorch", r >= 1.2 if r else None,
      f"{fmt(r, '{:.3f}')}x the same call's PyTorch ({fmt(t, '{:,.0f}')} tok/s); "
      f"{fmt(r0, '{:.3f}')}x the README's 10,422")
check("LLaMA-3-8B under --gpu-mem 10GiB fits and runs", g(runs.get("l3-10g"), "rc") == 0 if "l3-10g" in runs else None,
      f"rc {g(runs.get('l3-10g'), 'rc')}, {fmt(steady('l3-10g'), '{:,.0f}')} tok/s steady")
for n, what in (("l13-24g", "13B under --gpu-mem 24GiB (host home) runs 30 steps"),
                ("l13-10g-nvme", "13B under --gpu-mem 10GiB --host-mem 8GiB (store file) runs 30 steps")):
    rr = runs.get(n)
    done = g(rr, "bench", "steps")
    check(what, (g(rr, "rc") == 0 and done == 30) if rr else None,
          f"rc {g(rr, 'rc')}, {done} steps, {fmt(steady(n), '{:,.0f}')} tok/s steady, {fmt(avg(n), '{:,.0f}')} avg"
          if rr else "not run")
o = g(runs.get("l13-10g-nvme"), "bench", "offload") or {}
pd = probe_key("disk", last=True) or probe_key("direct", last=True)
ref, src = (pd, "probe") if pd else (disk.get("dd_read_gbps"), "dd")
r = o.get("disk_read_gbps") / ref if o.get("disk_read_gbps") and ref else None
check("13B store read GB/s >= 80 % of the O_DIRECT rate", r >= 0.8 if r else None,
      f"{fmt(o.get('disk_read_gbps'))} GB/s ({o.get('disk_io', '-')}) vs {src} {fmt(ref)} GB/s = {fmt(r, '{:.2f}')}")
l33 = runs.get("l33-24g")
check("30B-class preset under --gpu-mem 24GiB", (g(l33, "rc") == 0) if l33 else None,
      f"rc {g(l33, 'rc')}" if l33 else "no 30B-class preset in configs/models: not run")
ok = (exact.get("host") and exact.get("nvme")) if exact else None
check("7B bit-exact: host and nvme homes vs resident", ok, json.dumps(exact))
errs = []
for n, rr in runs.items():
    plan, b = rr.get("plan") or {}, rr.get("bench") or {}
    if plan.get("peak_bytes") and b.get("peak_bytes"):
        errs.append((n, plan["peak_bytes"] / b["peak_bytes"] - 1,
                     plan["predicted_tokens_per_s"] / b["avg_tokens_per_s"] - 1
                     if plan.get("predicted_tokens_per_s") and b.get("avg_tokens_per_s") else None))
ok = all(abs(e) <= 0.05 and (t is not None and abs(t) <= 0.15) for _, e, t in errs) if errs else None
check("owlore plan within 5 % (peak) and 15 % (tokens/s)", ok,
      "; ".join(f"{n} {e * 100:+.1f} % / {fmt(t * 100 if t is not None else None, '{:+.1f}')} %" for n, e, t in errs)
      or "this build's plan has no --json with peak_bytes and predicted_tokens_per_s")
EOF
}

# ---- main ----

do_part() {
  PART=$1
  START=$SECONDS
  if [ "$DRY" = 1 ]; then
    EST_TOTAL=0
    "part$PART"
    echo "  part $PART: ~$EST_TOTAL s of runs (budget $BUDGET s; one device call of at most 600 s)"
    return
  fi
  preflight
  "part$PART"
  say "part $PART done in $((SECONDS - START)) s"
  pack
  table "$OUT/part$PART.jsonl" | tee -a "$OUT/part$PART.log"
}

case "${1:-}" in
  1 | 2 | 3) do_part "$1" ;;
  all)
    for p in 1 2 3; do do_part $p; done
    [ "$DRY" = 1 ] || table "$OUT"/part[123].jsonl
    ;;
  table)
    shift
    table "$@"
    ;;
  *)
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | cut -c3-
    exit 2
    ;;
esac
