{{- define "redis.image" -}}
{{ include "common.images.image" (dict "imageRoot" .Values.image "global" .Values.global) }}
{{- end -}}
{{- define "redis.sentinel.image" -}}
{{ include "common.images.image" (dict "imageRoot" .Values.sentinel.image "global" .Values.global) }}
{{- end -}}
{{- define "redis.metrics.image" -}}
{{ include "common.images.image" (dict "imageRoot" .Values.metrics.image "global" .Values.global) }}
{{- end -}}
{{- define "redis.volumePermissions.image" -}}
{{ include "common.images.image" (dict "imageRoot" .Values.volumePermissions.image "global" .Values.global) }}
{{- end -}}
{{- define "redis.sysctl.image" -}}
{{ include "common.images.image" (dict "imageRoot" .Values.sysctl.image "global" .Values.global) }}
{{- end -}}
{{- define "redis.kubectl.image" -}}
{{ include "common.images.image" (dict "imageRoot" .Values.kubectl.image "global" .Values.global) }}
{{- end -}}

{{/* Init containers shared by master and replicas */}}
{{- define "redis.initContainers" -}}
{{- if .Values.volumePermissions.enabled }}
- name: volume-permissions
  image: {{ include "redis.volumePermissions.image" . }}
  imagePullPolicy: {{ .Values.volumePermissions.image.pullPolicy | quote }}
  command: ["/bin/bash", "-ec", "chown -R 1001:1001 /data"]
  securityContext:
    runAsUser: 0
{{- end }}
{{- if .Values.sysctl.enabled }}
- name: init-sysctl
  image: {{ include "redis.sysctl.image" . }}
  imagePullPolicy: {{ .Values.sysctl.image.pullPolicy | quote }}
  securityContext:
    privileged: true
    runAsUser: 0
  {{- if .Values.sysctl.command }}
  command: {{- toYaml .Values.sysctl.command | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Sidecars shared by master and replicas */}}
{{- define "redis.metricsContainer" -}}
{{- if .Values.metrics.enabled }}
- name: metrics
  image: {{ include "redis.metrics.image" . }}
  imagePullPolicy: {{ .Values.metrics.image.pullPolicy | quote }}
  command: ["/bin/bash", "-c", "redis_exporter"]
  ports:
    - name: metrics
      containerPort: 9121
{{- end }}
{{- end -}}
