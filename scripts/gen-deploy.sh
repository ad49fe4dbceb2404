#!/usr/bin/env bash
# Regenerates deploy/operator.yaml: the operator chart rendered with its default values plus
# charts/lazyoci-operator/ci/deploy-values.yaml (a placeholder image that says it must be built).
# tests/operator_chart.rs fails when deploy/operator.yaml differs from a fresh render.
# helm: $LAZYOCI_HELM, else /var/tmp/lazyoci-tools/bin/helm (scripts/install-test-deps.sh), else helm.
set -euo pipefail
cd "$(dirname "$0")/.."
helm="${LAZYOCI_HELM:-}"
if [ -z "$helm" ]; then
  if [ -x /var/tmp/lazyoci-tools/bin/helm ]; then helm=/var/tmp/lazyoci-tools/bin/helm; else helm=helm; fi
fi
"$helm" template lazyoci-operator charts/lazyoci-operator --namespace lazyoci-system \
  -f charts/lazyoci-operator/ci/deploy-values.yaml > deploy/operator.yaml
echo "wrote deploy/operator.yaml" >&2
