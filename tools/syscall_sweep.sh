#!/bin/sh
# syscall_sweep.sh - kill -9 a checkpoint save at every file-system system call it makes, then, from
# what that left, kill a second save at another call, then let a third finish. After each kill the
# directory must load (as a resume would, falling back to <dir>.old) and hold exactly the old or the
# new checkpoint, byte for byte; the final one must be the new. strace's fault injection delivers
# the SIGKILL at the k-th call of one system call (strace -e inject=NAME:signal=KILL:when=k), so
# sweeping every (name, k) that one save makes kills it once at each of its calls. Not part of
# make test (about a minute); make test runs the same sweep in-process, at each step of two saves
# (test_checkpoint_two_crashes_never_lose_it).
#   sh tools/syscall_sweep.sh
set -u
command -v strace > /dev/null || { echo "syscall_sweep: skipped (strace not found)"; exit 0; }
T=build/ckpt_tool
W=${TMPDIR:-/tmp}/ds_syscall_sweep_$$
SET='%file,%desc,flock,fsync'
mkdir -p "$W"
make -s $T > /dev/null || exit 1
$T make "$W/A" 1 1 && $T make "$W/B" 2 2 || { echo "syscall_sweep: cannot make the two checkpoints"; exit 1; }
# which checkpoint a directory holds: A, B, lost (nothing loads) or mixed
holds() {
  s=$($T step "$1" 2>/dev/null) || { echo lost; return; }
  d="$1"; [ -d "$1" ] || d="$1.old"
  if [ "$s" = 1 ] && cmp -s "$d/model.safetensors" "$W/A/model.safetensors" && cmp -s "$d/trainer_state.safetensors" "$W/A/trainer_state.safetensors"; then echo A
  elif [ "$s" = 2 ] && cmp -s "$d/model.safetensors" "$W/B/model.safetensors" && cmp -s "$d/trainer_state.safetensors" "$W/B/trainer_state.safetensors"; then echo B
  else echo mixed; fi
}
kill_at() { # kill_at NAME K: the save of B over D, killed at its K-th call of NAME
  strace -f -o /dev/null -e trace="$SET" -e inject="$1":signal=KILL:when="$2" $T copy "$W/B" "$W/D" > /dev/null 2>&1
}
# the calls of one save, by name: "name count" lines
rm -rf "$W/D" "$W/D.old" "$W/D.tmp"; cp -r "$W/A" "$W/D"
strace -f -o "$W/trace" -e trace="$SET" $T copy "$W/B" "$W/D" > /dev/null 2>&1
awk '$2 !~ /^[+][+][+]/ { sub(/\(.*/, "", $2); c[$2]++ } END { for (s in c) print s, c[s] }' "$W/trace" | sort > "$W/calls"
n=$(awk '{ t += $2 } END { print t + 0 }' "$W/calls")
[ "$n" -gt 0 ] || { echo "syscall_sweep: cannot trace the save"; exit 1; }
points=0 bad=0 old=0 new=0 second=0 p=0
while read -r name count; do
  k=1
  while [ $k -le "$count" ]; do
    rm -rf "$W/D" "$W/D.old" "$W/D.tmp"; cp -r "$W/A" "$W/D"
    kill_at "$name" $k
    h=$(holds "$W/D"); points=$((points + 1))
    case $h in A) old=$((old + 1)) ;; B) new=$((new + 1)) ;; *) bad=$((bad + 1)); echo "kill at $name #$k: $h" ;; esac
    # a second save, killed at another call (the resumed run's next save crashing too)
    p=$((p + 1))
    name2=$(awk -v r=$(( (p * 7919) % n )) '{ if (r < $2) { print $1; exit } r -= $2 }' "$W/calls")
    k2=$(awk -v s="$name2" -v p=$p '$1 == s { print (p * 31) % $2 + 1 }' "$W/calls")
    kill_at "$name2" "$k2"
    h2=$(holds "$W/D"); points=$((points + 1)); second=$((second + 1))
    case $h2 in A|B) ;; *) bad=$((bad + 1)); echo "kill at $name #$k, then at $name2 #$k2: $h2" ;; esac
    $T copy "$W/B" "$W/D" > /dev/null 2>&1 || { bad=$((bad + 1)); echo "after kills at $name #$k and $name2 #$k2 the next save failed"; }
    [ "$(holds "$W/D")" = B ] || { bad=$((bad + 1)); echo "after kills at $name #$k and $name2 #$k2 the final save does not hold the new checkpoint"; }
    k=$((k + 1))
  done
done < "$W/calls"
echo "syscall_sweep: $n calls in a save ($(tr '\n' ' ' < "$W/calls" | sed 's/ $//')); $points kill points ($second of them a second kill), $old left the old checkpoint, $new the new, $bad lost or mixed"
rm -rf "$W"
[ $bad -eq 0 ]
