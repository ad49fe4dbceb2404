{{- define "nats.fullname" -}}
{{- printf "%s-%s" .Release.Name "nats" | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{/* image: [registry/]repository:tag; usage include "nats.image" (dict "image" .x "global" $.Values.global "defaultTag" "...") */}}
{{- define "nats.image" -}}
{{- $registry := .image.registry | default .global.image.registry -}}
{{- $ref := printf "%s:%s" .image.repository (.image.tag | default .defaultTag) -}}
{{- if $registry }}{{ printf "%s/%s" $registry $ref }}{{ else }}{{ $ref }}{{ end -}}
{{- end -}}
