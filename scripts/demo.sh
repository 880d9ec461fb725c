#!/usr/bin/env bash
# The digits example end to end, as a user would type it.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKYARD=${DOCKYARD:-dockyard}
start=$(date +%s)

echo "==> Starting the embedded control plane (SQLite and volumes under ${DOCKYARD_HOME:-~/.dockyard})"
"$DOCKYARD" server start

echo
echo "==> dockyard apply -f examples/digits/ --wait"
echo "    (volumes, an environment, a dataset, a training job that registers a model, a service)"
"$DOCKYARD" apply -f examples/digits/ --wait

echo
echo "==> dockyard models list"
"$DOCKYARD" models list

echo
echo "==> dockyard predict digits --file examples/digits/sample-request.json  (the image is an 8)"
"$DOCKYARD" predict digits --file examples/digits/sample-request.json

url=$("$DOCKYARD" get service digits -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["url"])')
home=${DOCKYARD_HOME:-~/.dockyard}
cat <<NEXT

Done in $(( $(date +%s) - start ))s. What to try next:
  $DOCKYARD get                                  # everything, with status
  $DOCKYARD logs train-digits                    # the training output
  $DOCKYARD describe job train-digits            # attempts, lineage, events
  $DOCKYARD models show digits 1                 # metrics, files, lineage of version 1
  $DOCKYARD predict digits --json '{"inputs": [...]}'   # the Open Inference Protocol, at $url
  $DOCKYARD apply -f examples/digits/            # again: nothing changes (idempotent)
  $DOCKYARD server stop                          # stop the server (a cluster's workloads stay)
(this home keeps its settings: later commands need only DOCKYARD_HOME=$home)
NEXT
