#!/bin/sh
# crash_sweep.sh [TRIALS] - kill -9 at random moments (some of them mid-save), then resume, until
# the run ends; the final checkpoint must be byte-identical to an uninterrupted run's, and no kill
# may leave the run without a loadable checkpoint. Not part of make test (minutes); make test runs
# the step-by-step crash sweep of two consecutive saves (test_checkpoint_two_crashes_never_lose_it).
set -u
TRIALS=${1:-20}
B=build/02_pretrain
ARGS="--steps ${STEPS:-200} --ckpt-every 3 --eval-every 60 --sample 0 --dim 64 --layers 2 --heads 2 --kv-heads 1 --vocab 512 --batch 8 --seq 64 --threads 1"
W=${TMPDIR:-/tmp}/ds_crash_sweep_$$
mkdir -p "$W"
[ -x $B ] || make $B > /dev/null
$B $ARGS --out "$W/ref" > /dev/null 2>&1 || { echo "the reference run failed"; exit 1; }
ref=$(cat "$W/ref/ckpt/model.safetensors" "$W/ref/ckpt/trainer_state.safetensors" | cksum)
same=0 lost=0 kills=0
t=1
while [ $t -le $TRIALS ]; do
  rm -rf "$W/run"
  k=0
  while :; do
    r=""; if [ -d "$W/run/ckpt" ] || [ -d "$W/run/ckpt.old" ]; then r="--resume"; fi
    $B $ARGS --out "$W/run" $r > "$W/log" 2>&1 &
    pid=$!
    if [ $k -lt 6 ]; then
      sleep "$(awk -v s="$t$k" 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 1.5 }')"
      if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
      wait $pid 2>/dev/null
      k=$((k + 1))
      if [ -n "$r" ] && grep -q "^resume:" "$W/log"; then lost=$((lost + 1)); echo "trial $t: $(grep '^resume:' "$W/log")"; break; fi
    else
      wait $pid || { echo "trial $t: the final run failed: $(tail -1 "$W/log")"; lost=$((lost + 1)); }
      break
    fi
  done
  got=$(cat "$W/run/ckpt/model.safetensors" "$W/run/ckpt/trainer_state.safetensors" 2>/dev/null | cksum)
  [ "$got" = "$ref" ] && same=$((same + 1))
  t=$((t + 1))
done
echo "crash_sweep: $TRIALS trials, $kills kill -9s, $same byte-identical final checkpoints, $lost lost checkpoints"
rm -rf "$W"
[ $same -eq $TRIALS ] && [ $lost -eq 0 ]
