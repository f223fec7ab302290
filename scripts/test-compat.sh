#!/usr/bin/env sh
# `make test-compat`: the socket, cluster and room tests against the lowest and the highest
# versions pyproject.toml allows of the three libraries whose internals the fast paths use.
# Everything else stays at the locked versions, so a failure names one of these three.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LIBRARIES="python-socketio python-engineio aiohttp"
TESTS=${COMPAT_TESTS:-tests/handlers tests/server tests/rooms}

# "name>=low,<high" for each library, read from pyproject.toml.
specs=$("$PYTHON" - $LIBRARIES <<'PY'
import re, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for name in sys.argv[1:]:
    (spec,) = [d for d in deps if re.match(rf"{re.escape(name)}\s*[<>=!~]", d)]
    print(spec.split(";")[0].replace(" ", ""))
PY
)

for edge in lowest highest; do
  venv=.venv-compat-$edge
  if [ ! -x "$venv/bin/python" ]; then "$PYTHON" -m venv "$venv"; fi
  "$venv/bin/python" -m pip install --quiet --require-hashes -r requirements-dev.lock
  pins=""
  for spec in $specs; do
    if [ "$edge" = lowest ]; then
      name=${spec%%>=*}; low=${spec#*>=}; low=${low%%,*}
      pins="$pins $name==$low"
    else
      pins="$pins $spec"
    fi
  done
  # shellcheck disable=SC2086 # one word per requirement
  "$venv/bin/python" -m pip install --quiet --upgrade $pins
  "$venv/bin/python" -m pip install --quiet --no-deps -e .
  echo "== $edge: $("$venv/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(python-socketio|python-engineio|aiohttp)==' | tr '\n' ' ')"
  # shellcheck disable=SC2086 # TESTS is a list of paths
  "$venv/bin/python" -m pytest -q -p no:cacheprovider $TESTS
done
