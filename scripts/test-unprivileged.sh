#!/usr/bin/env bash
# Run the tests that need neither root nor the lab (pytest -m "not lab") as an unprivileged user:
# nobody, no groups, no capabilities. Under CI=true a skipped test fails the run (tests/conftest.py),
# so this proves the set passes without privileges and with nothing skipped. Run as root, after
# scripts/setup.sh; extra arguments go to pytest.
#
# nobody can seldom read the checkout (it may live under /root) or run .venv's interpreter (pyenv
# keeps it under /root too), so the tree is copied to a fresh directory and a throwaway virtualenv
# is built there from the first interpreter nobody can run. Both are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "test-unprivileged: run as root (it drops to nobody)" >&2; exit 3; fi
user=nobody
uid=$(id -u "$user") gid=$(id -g "$user")
as_user=(setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all)

work=$(mktemp -d /tmp/recon-unprivileged-XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir "$work/tree"
tar --exclude=./.git --exclude=./.venv --exclude='*.egg-info' --exclude=./build --exclude='__pycache__' \
    --exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.hypothesis --exclude=./.pytest_cache -cf - . \
  | tar -xf - -C "$work/tree"

base=$(.venv/bin/python -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null || true)
python=""
for candidate in /usr/bin/python3 /usr/local/bin/python3 "$base"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  "${as_user[@]}" "$candidate" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || continue
  if "$candidate" -m venv "$work/venv" 2>/dev/null; then python=$candidate; break; fi
  rm -rf "$work/venv"
done
if [ -z "$python" ]; then
  echo "test-unprivileged: no Python 3.11+ that $user can run and that can make a venv" \
       "(install python3 and python3-venv)" >&2
  exit 3
fi
"$work/venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$work/venv/bin/python" -m pip install -q "$work/tree[test,cluster]"
chown -R "$uid:$gid" "$work/tree"

echo "test-unprivileged: pytest -m 'not lab' as $user (uid $uid), no capabilities, with $python" >&2
cd "$work/tree"
"${as_user[@]}" env -i PATH="$PATH" HOME="$work/tree" LANG=C.UTF-8 CI=true PYTHONPATH="$work/tree" \
  "$work/venv/bin/python" -m pytest -m "not lab" -p no:cacheprovider -q "$@"
