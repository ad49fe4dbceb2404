{{- define "po.fullname" -}}
{{- printf "%s-prometheus-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
