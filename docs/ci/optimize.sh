# Optimise MODEL for the target device, gate the job on edgeprune's exit code, and write a summary.
# Settings from the environment (defaults after :-): the model, the calibration data, the output folder, and
# the optimize flags (split at spaces). The summary goes to $GITHUB_STEP_SUMMARY (stdout outside Actions).
MODEL="${MODEL:-model.onnx}"
CALIB="${CALIB:-calib/}"
OUT="${OUT:-out/}"
OPTIMIZE_FLAGS="${OPTIMIZE_FLAGS:---device jetson-orin-nano --max-acc-drop 1 --json}"
SUMMARY="${GITHUB_STEP_SUMMARY:-/dev/stdout}"
read -r -a flags <<< "$OPTIMIZE_FLAGS"

logs="$(mktemp -d)"
status=0  # `|| status=$?` keeps the exit code under the `bash -e` that Actions runs steps with
edgeprune optimize "$MODEL" --calib "$CALIB" --out "$OUT" "${flags[@]}" > "$logs/stdout" 2> "$logs/stderr" \
  || status=$?
cat "$logs/stdout"
cat "$logs/stderr" >&2

case "$status" in
  0) verdict="success" ;;
  1) verdict="a goal, budget or guard was not met, or an internal error; nothing was written" ;;
  2) verdict="bad usage or input; nothing was written" ;;
  130) verdict="interrupted; nothing was written" ;;
  *) verdict="unexpected failure" ;;
esac
{
  echo "## edgeprune optimize $MODEL: exit $status ($verdict)"
  echo
  if [ -f "$OUT/report.md" ]; then
    cat "$OUT/report.md"
  elif [ -f "$OUT/report.json" ]; then
    python -c '
import json, sys
report = json.load(open(sys.argv[1]))
def get(*keys):
    value = report
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
def change(before, after, spec=",.0f", unit=""):
    if not before or after is None:
        return "n/a"
    return f"{before:{spec}}{unit} -> {after:{spec}}{unit} ({after / before:.1%})"
judged = get("comparison_recovered") or get("comparison_reconstructed") or {}
original, pruned, images = (judged.get(key) for key in ("accuracy_original", "accuracy_pruned", "images"))
held_out = f"{original:.2%} -> {pruned:.2%} on {images} images" if original is not None else "n/a"
device, proof = get("latency", "device"), get("verification") or {}
passed, max_rel = proof.get("passed"), proof.get("max_rel")
rows = [
    ("MACs", change(get("cost_before", "macs"), get("cost_after", "macs"))),
    ("parameters", change(get("cost_before", "params"), get("cost_after", "params"))),
    ("held-out accuracy", held_out),
    (f"predicted latency on {device}",
     change(get("latency", "predicted_ms_before"), get("latency", "predicted_ms_after"), ".3f", " ms")),
    ("proof", f"passed: {passed}, max relative difference {max_rel:.2g}" if max_rel is not None else "n/a"),
]
print("| | before -> after |\n|---|---|")
print("\n".join(f"| {name} | {value} |" for name, value in rows))
' "$OUT/report.json"
  else
    echo "No report was written. The last message:"
    echo
    echo '```'
    tail -n 5 "$logs/stderr"
    echo '```'
  fi
} >> "$SUMMARY"
exit "$status"
