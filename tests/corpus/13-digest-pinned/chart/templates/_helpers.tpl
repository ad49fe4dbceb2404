{{- define "ingress-nginx.fullname" -}}
{{- printf "%s-ingress-nginx" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Controller container image: the chroot variant gets a "-chroot" suffix and its own digest.
*/}}
{{- define "ingress-nginx.image" -}}
{{- if .chroot -}}
{{- printf "%s-chroot" .image -}}
{{- else -}}
{{- printf "%s" .image -}}
{{- end }}
{{- end -}}

{{- define "ingress-nginx.imageDigest" -}}
{{- if .chroot -}}
{{- if .digestChroot -}}
{{- printf "@%s" .digestChroot -}}
{{- end }}
{{- else -}}
{{ if .digest -}}
{{- printf "@%s" .digest -}}
{{- end -}}
{{- end }}
{{- end -}}
