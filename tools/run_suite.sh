#!/usr/bin/env bash
# The whole test suite: one pytest pass per Keras backend, TEST_JOBS passes at a time, the
# end-to-end tests (marker one_backend: fresh interpreters running the README, the examples
# and the CLI) once as a pass of their own on END_TO_END_BACKEND, and the slow tests once
# (on SLOW_BACKEND). `make test` and CI run this.
#
# The end-to-end tests are a pass of their own so that the two parallel slots stay balanced:
# inside the torch pass they made tensorflow + torch the longest chain of the run.
#
# The passes are separate processes with their own caches and temporary folders, so they
# can run side by side: most of a test's time is single-threaded (tracing, compiling, Python
# overhead of tiny models), so two passes on two cores take about half the time of one after
# the other. Each pass's log is printed whole when it ends, then a table of wall times.
set -uo pipefail
PY=${PY:-.venv/bin/python}
BACKENDS=${BACKENDS:-tensorflow jax torch}
SLOW_BACKEND=${SLOW_BACKEND:-jax}
END_TO_END_BACKEND=${END_TO_END_BACKEND:-torch}
RUN_END_TO_END=${RUN_END_TO_END:-1}
TEST_JOBS=${TEST_JOBS:-2}
RUN_SLOW=${RUN_SLOW:-1}
MARKERS=${MARKERS:-not slow}
PYTEST_ARGS=${PYTEST_ARGS:-}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Nothing is written to $HOME (tests/conftest.py points these at its own folder as well).
export KERAS_HOME=$scratch/keras XDG_CACHE_HOME=$scratch/cache HF_HOME=$scratch/hf \
       KERAS_DANET_HOME=$scratch/keras_danet TORCHINDUCTOR_CACHE_DIR=$scratch/inductor
export KERAS_DANET_ONE_BACKEND=$END_TO_END_BACKEND  # tests/conftest.py

# Longest first, so that the two slots end together: the two longest backend passes, then the
# end-to-end pass (8 minutes), the rest of the backends (PyTorch's is the shortest), the slow
# tests (2 minutes). Measured: TensorFlow 12, JAX 11, PyTorch 6 minutes, two at a time.
backends=($BACKENDS)
passes=("${backends[@]:0:2}")
[ "$RUN_END_TO_END" = 1 ] && passes+=("end_to_end")
passes+=("${backends[@]:2}")
[ "$RUN_SLOW" = 1 ] && passes+=("slow")

backend_of() {
  case $1 in
    slow) echo "$SLOW_BACKEND" ;;
    end_to_end) echo "$END_TO_END_BACKEND" ;;
    *) echo "$1" ;;
  esac
}

run_pass() {
  local name=$1 backend markers="($MARKERS) and not one_backend" extra=()
  backend=$(backend_of "$name")
  local fast_compile=1  # tests/conftest.py: XLA's quick compile, except for the slow tests
  if [ "$name" = slow ]; then markers=slow extra=(-s) fast_compile=0; fi
  if [ "$name" = end_to_end ]; then markers="($MARKERS) and one_backend"; fi
  mkdir -p "$scratch/$name"
  local start=$SECONDS
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  KERAS_BACKEND=$backend KERAS_DANET_TEST_FAST_COMPILE=$fast_compile "$PY" -m pytest -p no:cacheprovider --basetemp "$scratch/$name/tmp" \
    -m "$markers" "${extra[@]}" $PYTEST_ARGS >"$scratch/$name.log" 2>&1
  echo $? >"$scratch/$name.rc"
  echo $((SECONDS - start)) >"$scratch/$name.seconds"
}

start=$SECONDS
running=0
for name in "${passes[@]}"; do
  if [ "$running" -ge "$TEST_JOBS" ]; then wait -n; running=$((running - 1)); fi
  echo "=== started: $name (KERAS_BACKEND=$(backend_of "$name"))"
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
