#!/usr/bin/env bash
# Every answer question set in one run of bench/answer_quality.py (issue 15's table):
#   bash bench/answer_sets.sh SEED_INDEX MD_INDEX
# SEED_INDEX: an index of corpus/ (the sample notes); MD_INDEX: one of ../shared/corpora/LLMForEverybody.
# The check sets hold questions over both corpora; each part is scored against its own index.
set -euo pipefail
cd "$(dirname "$0")/.."
seed=$1 md=$2
shared=${SHARED:-../shared}
split=$(mktemp -d)
trap 'rm -rf "$split"' EXIT
for name in check_english check_two_part; do
  grep '"corpus": "sample"' "bench/data/$name.jsonl" > "$split/${name}_sample.jsonl"
  grep '"corpus": "md"' "bench/data/$name.jsonl" > "$split/${name}_md.jsonl"
done
exec "${PYTHON:-.venv/bin/python}" bench/answer_quality.py \
  --set "$shared/eval/dev.jsonl" "$seed" --set "$shared/eval/dev-md.jsonl" "$md" \
  --set bench/data/dev_two_part_md.jsonl "$md" --set bench/data/dev_sample_hard.jsonl "$seed" \
  --set "$split/check_english_sample.jsonl" "$seed" --set "$split/check_english_md.jsonl" "$md" \
  --set "$split/check_two_part_sample.jsonl" "$seed" --set "$split/check_two_part_md.jsonl" "$md" \
  --set bench/data/dev_md_hard.jsonl "$md" --set bench/data/check_md_blind.jsonl "$md" "${@:3}"
