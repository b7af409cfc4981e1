#!/usr/bin/env bash
# Regenerates data/python_tutorial.txt: the reStructuredText sources of the
# Python tutorial (written by the Python developers, PSF License), taken from
# Debian's python3.11-doc package and joined in the tutorial's own order
# (its index.rst toctree). Only Debian's archive is contacted.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download python3.11-doc >&2
dpkg-deb --field python3.11-doc_*.deb Version >&2
dpkg -x python3.11-doc_*.deb unpacked
src=unpacked/usr/share/doc/python3.11/html/_sources/tutorial
out="$root/data/python_tutorial.txt"
: > "$out"
for page in $(sed -n 's/^ *\([a-z0-9]*\)\.rst$/\1/p' "$src/index.rst.txt"); do
    cat "$src/$page.rst.txt" >> "$out"
    printf '\n' >> "$out"
done
sha256sum "$out" | sed "s#$root/##"
