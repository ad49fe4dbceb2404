{{/* Chart name, truncated to 63 characters (DNS label limit). */}}
{{- define "lazyoci-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, plus the chart name unless the release name already contains it.
*/}}
{{- define "lazyoci-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lazyoci-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "lazyoci-operator.labels" -}}
helm.sh/chart: {{ include "lazyoci-operator.chart" . }}
{{ include "lazyoci-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: lazyoci
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels (immutable on the Deployment: keep them stable). */}}
{{- define "lazyoci-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lazyoci-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lazyoci-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lazyoci-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image. There is no public one: image.repository must name the image built with
scripts/build-image.sh and pushed to a registry the cluster pulls from.
*/}}
{{- define "lazyoci-operator.image" -}}
{{- if not .Values.image.repository }}
{{- fail "image.repository is not set, and no public lazyoci image exists: build the image with scripts/build-image.sh, push it to a registry your cluster pulls from (scripts/build-image.sh --push HOST/REPO:TAG), then set image.repository=HOST/REPO and image.tag=TAG (README: Deploy the operator)" }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* rbac.scope, validated. */}}
{{- define "lazyoci-operator.rbacScope" -}}
{{- $scope := .Values.rbac.scope | default "cluster" }}
{{- if not (has $scope (list "cluster" "namespace")) }}
{{- fail (printf "rbac.scope must be \"cluster\" or \"namespace\", not %q" $scope) }}
{{- end }}
{{- $scope }}
{{- end }}

{{/*
The namespace the operator watches: watchNamespace, else (namespace scope) the release
namespace, else empty (all namespaces).
*/}}
{{- define "lazyoci-operator.watchNamespace" -}}
{{- if .Values.watchNamespace }}
{{- .Values.watchNamespace }}
{{- else if eq (include "lazyoci-operator.rbacScope" .) "namespace" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs on ChartMirrors, Events, Secrets and ConfigMaps (least privilege; keep in
sync with tests/operator_chart.rs). Leases are in a separate Role in the release namespace.
*/}}
{{- define "lazyoci-operator.rules" -}}
- apiGroups: ["lazyoci.io"]
  resources: ["chartmirrors"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["lazyoci.io"]
  resources: ["chartmirrors/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# Only the Secrets a ChartMirror references (target/upstream credentials, CA bundles) are read.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# One ConfigMap per chart version holds its values overlay (owned by the ChartMirror).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "update"]
{{- end }}
