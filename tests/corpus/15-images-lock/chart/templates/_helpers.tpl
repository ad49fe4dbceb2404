{{- define "wordpress.img" -}}
{{- $registry := default .imageRoot.registry .global.imageRegistry -}}
{{- if .imageRoot.digest -}}
{{- printf "%s/%s@%s" $registry .imageRoot.repository .imageRoot.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $registry .imageRoot.repository .imageRoot.tag -}}
{{- end -}}
{{- end -}}
