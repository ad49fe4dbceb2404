{{- define "gitlab-runner.fullname" -}}
{{- printf "%s-gitlab-runner" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gitlab-runner.image" -}}
{{- $image := printf "%s:%s" .Values.image.image (.Values.image.tag | default (printf "alpine-v%s" .Chart.AppVersion)) -}}
{{- if .Values.image.registry -}}
{{- $image = printf "%s/%s" .Values.image.registry $image -}}
{{- end -}}
{{- tpl $image . }}
{{- end -}}
