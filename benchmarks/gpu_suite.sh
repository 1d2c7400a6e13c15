#!/usr/bin/env bash
# The GPU evidence in one command: embedding, captioning and text-embedding throughput, a
# Markdown summary of the machine and the figures, and the K400 sweep estimate they imply.
#
#   bash benchmarks/gpu_suite.sh [--device cuda|cpu] [--quick] [--out DIR] [--bundle DIR]
#   bash benchmarks/gpu_suite.sh --prepare DIR [--python-version 3.12]
#
# --device cuda (default), full size, at most 8 minutes on one H100/H200 (each step has its
#   own time limit; see STEPS below):
#   0. tests/test_device_frames.py on the GPU: the device JPEG path against PIL's
#      (benchmarks/device_equivalence.py);
#   1. embedding, ViT-B/16 and ViT-L/14 at random init, fp16 weights: 512 K400-like clips,
#      8 frames, 16 decode workers; the decode pool alone against the frames + embedding
#      stages (benchmarks/embed_throughput.py);
#   2. captioning through zsar's TransformersCaptioner with a 7B-shaped Qwen2.5-VL at random
#      init, bf16, built on the GPU: one video at a time, then batches of 16 and 64
#      (benchmarks/caption_throughput.py);
#   3. text embedding, ViT-B/16's text tower (benchmarks/text_throughput.py).
# --device cpu --quick: the same code paths at toy sizes (the tiny CLIP, once with PIL
#   workers and once with the device path; a small Qwen2.5-VL), in about a minute or two.
#
# It installs nothing from a package registry (GPU nodes often reach none). It runs with the
# python3 on PATH (or $PYTHON) and its packages, plus what --bundle carries: a folder made
# beforehand by --prepare on a machine with network, holding wheels of the packages GPU
# images usually lack (open_clip_torch and its ftfy/wcwidth, decord), installed with
# `pip --no-index` into a scratch folder, and 32 clips for when the node has no ffmpeg.
#
# Output: each harness's log under DIR/logs/, DIR/summary.md (GPU, driver, library
# versions, the figures against the targets, the sweep estimate) and DIR/rates.json (the
# rates benchmarks/sweep_estimate.py reads). The last lines printed are machine-readable,
# one per measurement, e.g.
#   step=embed-vit-b-16 embed_vs_decode_bound=0.95 videos_per_s=101.2 ...
#   step=captions batched_vs_single=47.0 captions_per_s=10.8 ... batch=64 ...
# The exit status is 0 only if every step ran and printed its line.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
DEVICE=cuda
QUICK=0
OUT=
BUNDLE=
PREPARE=
TARGET_PY=3.12
# Wheels a GPU image lacks most often, pinned as pyproject.toml pins them.
BUNDLE_WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 decord==0.6.0)
BUNDLE_CLIPS=32

die() { echo "gpu_suite: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=${2:?--device needs cuda or cpu}; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --out) OUT=${2:?--out needs a folder}; shift 2 ;;
        --bundle) BUNDLE=${2:?--bundle needs a folder}; shift 2 ;;
        --prepare) PREPARE=${2:?--prepare needs a folder}; shift 2 ;;
        --python-version) TARGET_PY=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) die "--device must be cuda or cpu, not $DEVICE" ;; esac

export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

# ---------------------------------------------------------------- --prepare (has network)
if [ -n "$PREPARE" ]; then
    mkdir -p "$PREPARE/wheels" "$PREPARE/clips" || die "cannot create $PREPARE"
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
             manylinux2010_x86_64 manylinux1_x86_64; do
        platforms+=(--platform "$p")
    done
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version "$TARGET_PY" \
        --implementation cp "${platforms[@]}" -d "$PREPARE/wheels" "${BUNDLE_WHEELS[@]}" \
        || die "pip download failed"
    "$PYTHON" - "$REPO/benchmarks" "$PREPARE/clips" "$BUNDLE_CLIPS" <<'EOF' || die "making clips failed"
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from embed_throughput import ensure_clips
ensure_clips(Path(sys.argv[2]), int(sys.argv[3]), os.cpu_count() or 1)
EOF
    du -sh "$PREPARE"/*
    echo "bundle ready: carry $PREPARE to the GPU node and pass --bundle $PREPARE"
    exit 0
fi

OUT=${OUT:-$REPO/results/gpu-suite-$DEVICE$([ "$QUICK" = 1 ] && echo -quick)}
LOGS="$OUT/logs"
mkdir -p "$LOGS" || die "cannot create $OUT"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/zsar-gpu-suite.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}

# ---------------------------------------------------------------- what the bundle carries
CLIP_ARGS=""  # where the embedding steps take their clips from (their @CLIPS@)
if [ -n "$BUNDLE" ]; then
    [ -d "$BUNDLE" ] || die "no bundle folder $BUNDLE"
    if compgen -G "$BUNDLE/wheels/*.whl" >/dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SCRATCH/site" \
            "$BUNDLE"/wheels/*.whl || die "installing the bundle's wheels failed"
        export PYTHONPATH="$PYTHONPATH:$SCRATCH/site"  # the node's own packages come first
    fi
    if compgen -G "$BUNDLE/clips/*.mp4" >/dev/null; then
        CLIP_ARGS="--clips $BUNDLE/clips --distinct-clips $(ls "$BUNDLE"/clips/*.mp4 | wc -l)"
    fi
fi
missing=$("$PYTHON" - <<'EOF'
import importlib.util
need = ["torch", "torchvision", "transformers", "open_clip", "decord", "pyarrow", "yaml", "PIL"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
EOF
)
[ -z "$missing" ] || die "missing Python packages: $missing. Run --prepare DIR where there is \
network, carry DIR here and pass --bundle DIR."
if [ "$DEVICE" = cuda ]; then
    "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
        || die "torch sees no CUDA device; use --device cpu"
fi

# ---------------------------------------------------------------- the steps
CPUS=$(nproc 2>/dev/null || echo 1)
B=benchmarks
if [ "$DEVICE" = cuda ] && [ "$QUICK" = 0 ]; then
    # name | time limit (s) | command. Expected on an H100 from the reference figures:
    # the device path's equivalence tests ~30 s; embedding 40-60 s each (imports, model init,
    # 2 x 512 clips through the pool at ~100 videos/s); captions ~2 min (the 7B model is
    # built on the GPU in bf16 in seconds; 8 single videos at ~0.2/s, 2 batches of 16 and
    # 2 of 64); text ~20 s. The limits add up to 7.8 min.
    STEPS=(
        "equivalence|50|$B/device_equivalence.py"
        "embed-vit-b-16|90|$B/embed_throughput.py --device cuda --arch ViT-B-16 --workers 16 --videos 512 --skip-naive @CLIPS@"
        "embed-vit-l-14|110|$B/embed_throughput.py --device cuda --arch ViT-L-14 --workers 16 --videos 512 --skip-naive @CLIPS@"
        "captions|180|$B/caption_throughput.py --device cuda --batch 16,64"
        "text|40|$B/text_throughput.py --device cuda --arch ViT-B-16 --texts 16384"
    )
elif [ "$QUICK" = 1 ]; then
    # Every code path at toy sizes: the embedding stage with PIL workers and with the device
    # path (on this device), captions at two batch sizes, text.
    W=$([ "$DEVICE" = cuda ] && echo 16 || echo "$CPUS")
    CLIP_ARGS=${CLIP_ARGS:-"--distinct-clips 4"}
    STEPS=(
        "embed-tiny-workers|150|$B/embed_throughput.py --device $DEVICE --arch tiny --workers $W --videos 16 --skip-naive --frames-on workers @CLIPS@"
        "embed-tiny-device|150|$B/embed_throughput.py --device $DEVICE --arch tiny --workers $W --videos 16 --skip-naive --frames-on device @CLIPS@"
        "captions|150|$B/caption_throughput.py --device $DEVICE --shape small --batch 2,4 --single-videos 2 --batched-videos 4 --max-new-tokens 8"
        "text|60|$B/text_throughput.py --device $DEVICE --arch tiny --texts 512"
    )
else
    die "--device cpu runs full-size models for hours; use --device cpu --quick"
fi

# First words of each harness's machine-readable line(s).
LINE_KEYS='^(embed_vs_decode_bound|batched_vs_single|texts_per_s|device_equivalence)='
started=$SECONDS
failed=0
: >"$OUT/lines.txt"
for step in "${STEPS[@]}"; do
    IFS='|' read -r name limit command <<<"$step"
    command=${command/@CLIPS@/$CLIP_ARGS}
    echo "== $name (limit ${limit}s): $command"
    step_start=$SECONDS
    # shellcheck disable=SC2086 - the command is a word list by design
    (cd "$REPO" && timeout -k 10 "$limit" "$PYTHON" $command) >"$LOGS/$name.log" 2>&1
    rc=$?
    lines=$(grep -E "$LINE_KEYS" "$LOGS/$name.log" || true)
    if [ $rc -ne 0 ] || [ -z "$lines" ]; then
        failed=1
        echo "   FAILED (exit $rc after $((SECONDS - step_start)) s); last lines of $LOGS/$name.log:"
        tail -n 5 "$LOGS/$name.log" | sed 's/^/   | /'
        echo "step=$name failed=exit-$rc" >>"$OUT/lines.txt"
    else
        echo "   done in $((SECONDS - step_start)) s"
        sed "s/^/step=$name /" <<<"$lines" >>"$OUT/lines.txt"
    fi
done
echo "== steps took $((SECONDS - started)) s"

"$PYTHON" "$REPO/$B/gpu_suite_summary.py" --out "$OUT" --device "$DEVICE" --quick "$QUICK" \
    || failed=1
echo "summary: $OUT/summary.md"
cat "$OUT/lines.txt"
exit $failed
