#!/usr/bin/env bash
# Quickstart on the bundled WordNet fixtures: real data, three synthetic generations, provenance queries.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=./quickstart-store
rm -rf "$STORE"
lineage init "$STORE"
export LINEAGE_STORE="$STORE"
lineage ingest fixtures/real.jsonl --origin real --source wordnet-examples --method human --license WordNet-3.0
lineage ingest fixtures/synthetic-g1.jsonl --origin synthetic --source synthetic-v1-paraphrased \
    --method paraphrase --generator llama-3-8b --parent-field parent_id
lineage ingest fixtures/synthetic-g2.jsonl --origin synthetic --source synthetic-v2-llm-generated \
    --method paraphrase --generator llama-3-8b --parent-field parent_id
lineage ingest fixtures/synthetic-g3.jsonl --origin synthetic --source synthetic-v3-llm-generated \
    --method paraphrase --generator llama-3-8b --parent-field parent_id
lineage ingest fixtures/real.jsonl --origin real --source wordnet-examples   # a re-ingest stores nothing new
lineage sql "SELECT source, generation, count(*) AS samples FROM samples GROUP BY ALL ORDER BY ALL"
lineage stats --by origin,generation
lineage show syn3-00001
lineage doctor
