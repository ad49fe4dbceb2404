{{- define "obs.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "obs.image" -}}
{{- printf "%s/%s:%s" .registry .repository .tag -}}
{{- end -}}
