{{- define "vault.fullname" -}}
{{- printf "%s-vault" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "vault.injectorEnabled" -}}
{{- if eq (.Values.injector.enabled | toString) "-" }}true{{ else if .Values.injector.enabled }}true{{ end -}}
{{- end -}}
{{- define "vault.serverEnabled" -}}
{{- if eq (.Values.server.enabled | toString) "-" }}true{{ else if .Values.server.enabled }}true{{ end -}}
{{- end -}}
