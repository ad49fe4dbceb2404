{{- define "argo-workflows.image" -}}
{{- $tag := .image.tag | default .context.Values.images.tag | default .context.Chart.AppVersion -}}
{{- printf "%s/%s:%s" .image.registry .image.repository $tag -}}
{{- end -}}
