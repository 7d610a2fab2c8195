#!/usr/bin/env bash
# The whole test suite: one pytest pass per Keras backend, TEST_JOBS passes at a time, and
# the slow tests once (on SLOW_BACKEND). `make test` and CI run this.
#
# The passes are separate processes with their own caches and temporary folders, so they
# can run side by side: most of a test's time is single-threaded (tracing, compiling, Python
# overhead of tiny models), so two passes on two cores take about half the time of one after
# the other. Each pass's log is printed whole when it ends, then a table of wall times.
set -uo pipefail
PY=${PY:-.venv/bin/python}
BACKENDS=${BACKENDS:-tensorflow jax torch}
SLOW_BACKEND=${SLOW_BACKEND:-jax}
TEST_JOBS=${TEST_JOBS:-2}
RUN_SLOW=${RUN_SLOW:-1}
MARKERS=${MARKERS:-not slow}
PYTEST_ARGS=${PYTEST_ARGS:-}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Nothing is written to $HOME (tests/conftest.py points these at its own folder as well).
export KERAS_HOME=$scratch/keras XDG_CACHE_HOME=$scratch/cache HF_HOME=$scratch/hf \
       KERAS_DANET_HOME=$scratch/keras_danet TORCHINDUCTOR_CACHE_DIR=$scratch/inductor

passes=()
for backend in $BACKENDS; do passes+=("$backend"); done
[ "$RUN_SLOW" = 1 ] && passes+=("slow")

run_pass() {
  local name=$1 backend=$1 markers=$MARKERS extra=()
  if [ "$name" = slow ]; then backend=$SLOW_BACKEND markers=slow extra=(-s); fi
  mkdir -p "$scratch/$name"
  local start=$SECONDS
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  KERAS_BACKEND=$backend "$PY" -m pytest -p no:cacheprovider --basetemp "$scratch/$name/tmp" \
    -m "$markers" "${extra[@]}" $PYTEST_ARGS >"$scratch/$name.log" 2>&1
  echo $? >"$scratch/$name.rc"
  echo $((SECONDS - start)) >"$scratch/$name.seconds"
}

start=$SECONDS
running=0
for name in "${passes[@]}"; do
  if [ "$running" -ge "$TEST_JOBS" ]; then wait -n; running=$((running - 1)); fi
  echo "=== started: $name (KERAS_BACKEND=$([ "$name" = slow ] && echo "$SLOW_BACKEND" || echo "$name"))"
  run_pass "$name" &
  running=$((running + 1))
done
wait

status=0
for name in "${passes[@]}"; do
  echo
  echo "=== $name: $(cat "$scratch/$name.seconds") s, exit $(cat "$scratch/$name.rc")"
  cat "$scratch/$name.log"
  [ "$(cat "$scratch/$name.rc")" = 0 ] || status=1
done
echo
echo "=== test wall time per pass ($TEST_JOBS at a time), total $((SECONDS - start)) s"
for name in "${passes[@]}"; do
  printf '  %-12s %5s s  exit %s  %s\n' "$name" "$(cat "$scratch/$name.seconds")" \
    "$(cat "$scratch/$name.rc")" "$(grep -E '^=+ .*(passed|failed|error).* in ' "$scratch/$name.log" | tail -1 | tr -d '=')"
done
exit $status
