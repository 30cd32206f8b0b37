#!/bin/sh
# docker-compose 1.29 (it drives podman through podman's Docker-compatible socket) in a throwaway
# venv of its own: it pins old requests/urllib3/PyYAML that must not meet the project's.
# Usage: compose-venv.sh DIR  -> DIR/bin/docker-compose. Idempotent.
set -eu
DIR=${1:?usage: compose-venv.sh DIR}
[ -x "$DIR/bin/docker-compose" ] && exit 0
rm -rf "$DIR"
python3 -m venv "$DIR"
"$DIR/bin/pip" install -q "cython<3" wheel setuptools
"$DIR/bin/pip" install -q --no-build-isolation pyyaml==5.4.1
"$DIR/bin/pip" install -q docker-compose==1.29.2 docker==6.1.3 "requests<2.32" "urllib3<2"
"$DIR/bin/docker-compose" version --short
