{{- define "dashboards.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Image reference: registry/repository:tag[@sha256:sha]; tag defaults to the chart appVersion.
Usage: include "dashboards.image" (dict "root" $ "image" .Values.image)
*/}}
{{- define "dashboards.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- $ref := printf "%s/%s:%s" .image.registry .image.repository $tag -}}
{{- if .image.sha -}}{{- $ref = printf "%s@sha256:%s" $ref .image.sha -}}{{- end -}}
{{- $ref -}}
{{- end -}}
