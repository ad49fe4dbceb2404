{{- define "docs-site.fullname" -}}
{{- printf "%s-docs-site" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "docs-site.gitSyncImage" -}}
{{- with .Values.gitSync.image -}}{{ .registry }}/{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}
