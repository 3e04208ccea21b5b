#!/usr/bin/env bash
# llama.cpp's own `llama-server`, the real engine of the lab's model-update path: built from the
# llama.cpp source that llama-cpp-python's sdist on PyPI carries (vendor/llama.cpp), only the server
# target, web UI off, GGML_NATIVE=OFF (the binary runs on any x86-64 the lab runs on), static ggml
# libraries (one file to copy into a node). About 10 minutes on 2 cores, once per machine: the result
# is cached by a hash of its inputs under $ONPREM_AI_LAB_CACHE/llama-server/<key>/ (default
# /var/cache/onprem-ai-lab), outside the checkout like the node image, so a fresh clone finds it.
#
#   tests/lab/image/llama_server.sh          build it unless cached (needs cmake, g++, make, pip)
#   tests/lab/image/llama_server.sh --path   print the binary's path when it is built for the current
#                                            inputs, else nothing
#
# Inputs: this script, the pinned sdist version, the compiler and cmake versions, the machine.
# Nodes run Debian 12 like the host (tests/lab/image/build.sh), so the host-built binary runs there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
jobs=${LLAMA_SERVER_JOBS:-2}
out=${ONPREM_AI_LAB_CACHE:-/var/cache/onprem-ai-lab}/llama-server
pip=${PIP:-$root/.venv/bin/pip}
[ -x "$pip" ] || pip="python3 -m pip"

key() {
  {
    cat "$here/llama_server.sh"
    echo "llama-cpp-python==$version $(uname -m)"
    g++ --version | head -n1
    cmake --version | head -n1
  } | sha256sum | cut -c1-12
}

if [ "${1:-}" = --path ]; then
  command -v g++ >/dev/null 2>&1 && command -v cmake >/dev/null 2>&1 || exit 0
  k=$(key)
  [ -x "$out/$k/llama-server" ] && echo "$out/$k/llama-server"
  exit 0
fi

for tool in cmake g++ make; do
  command -v "$tool" >/dev/null 2>&1 || { echo "llama-server: $tool missing (tools/ensure-host.sh installs it)" >&2; exit 1; }
done
k=$(key)
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9  # two builders at once: one builds, the other finds it cached
if [ -x "$out/$k/llama-server" ]; then
  echo "$k" >"$out/current"
  echo "llama-server $out/$k/llama-server is up to date (cached)"
  exit 0
fi

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "building llama-server $k from llama-cpp-python $version's sdist (about 10 minutes on 2 cores)"
# The sdist (75 MB) is kept beside the builds: a rebuild for a new compiler does not fetch it again.
sdist=$out/sdist/llama_cpp_python-$version.tar.gz
if [ ! -f "$sdist" ]; then
  $pip download --quiet --no-binary :all: --no-deps --dest "$work/sdist" "llama-cpp-python==$version" \
    || { echo "llama-server: could not download the llama-cpp-python $version sdist" >&2; exit 1; }
  mkdir -p "$out/sdist"
  mv "$work"/sdist/llama_cpp_python-*.tar.gz "$sdist"
fi
tar -xzf "$sdist" -C "$work"
src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
[ -f "$src/CMakeLists.txt" ] || { echo "llama-server: no vendor/llama.cpp in the sdist" >&2; exit 1; }
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_WEBUI=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_APP=OFF -DGGML_OPENMP=OFF >"$work/cmake.log" 2>&1 \
  || { tail -n 30 "$work/cmake.log" >&2; echo "llama-server: cmake configure failed" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j "$jobs" >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; echo "llama-server: build failed" >&2; exit 1; }
bin=$(find "$work/build" -type f -name llama-server -perm -u+x | head -n1)
[ -n "$bin" ] || { echo "llama-server: the build left no llama-server binary" >&2; exit 1; }
"$bin" --version >"$work/version.txt" 2>&1 || true
mkdir -p "$work/out"
install -m 0755 "$bin" "$work/out/llama-server"
strip "$work/out/llama-server" 2>/dev/null || true
cp "$work/version.txt" "$work/out/version.txt"
echo "llama-cpp-python $version, built in $(( $(date +%s) - start )) s" >"$work/out/built.txt"
rm -rf "${out:?}/$k"
mv "$work/out" "$out/$k"
echo "$k" >"$out/current"
# Older builds are not used any more.
find "$out" -mindepth 1 -maxdepth 1 -type d ! -name "$k" ! -name '.build.*' ! -name sdist -exec rm -rf {} +
echo "built llama-server $out/$k/llama-server in $(( $(date +%s) - start )) s"
