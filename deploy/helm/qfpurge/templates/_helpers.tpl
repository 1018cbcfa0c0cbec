{{- define "qfpurge.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qfpurge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qfpurge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qfpurge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "qfpurge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "qfpurge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Secret the chart creates from inline values. */}}
{{- define "qfpurge.secretName" -}}
{{- include "qfpurge.fullname" . -}}
{{- end -}}

{{/*
Which Secret a section's keys come from: its own existingSecret, the shared
existingSecret, or the chart's Secret when the inline values are given.
Arguments: list $ section "what to set" inlineGiven.
*/}}
{{- define "qfpurge.sectionSecret" -}}
{{- $root := index . 0 -}}
{{- $s := index . 1 -}}
{{- $what := index . 2 -}}
{{- $inline := index . 3 -}}
{{- if $s.existingSecret -}}
{{- $s.existingSecret -}}
{{- else if $root.Values.existingSecret -}}
{{- $root.Values.existingSecret -}}
{{- else if $inline -}}
{{- include "qfpurge.secretName" $root -}}
{{- else -}}
{{- fail (printf "qfpurge: %s: set existingSecret (one Secret for every credential), or this section's existingSecret, or its inline values" $what) -}}
{{- end -}}
{{- end -}}

{{- define "qfpurge.qianfanSecret" -}}
{{- include "qfpurge.sectionSecret" (list . .Values.qianfan "qianfan (QIANFAN_ACCESS_KEY, QIANFAN_SECRET_KEY)" (and .Values.qianfan.accessKey .Values.qianfan.secretKey)) -}}
{{- end -}}

{{- define "qfpurge.qianfanReadSecret" -}}
{{- include "qfpurge.sectionSecret" (list . .Values.qianfan.read "qianfan.read (QIANFAN_READ_ACCESS_KEY, QIANFAN_READ_SECRET_KEY)" (and .Values.qianfan.read.accessKey .Values.qianfan.read.secretKey)) -}}
{{- end -}}

{{- define "qfpurge.redisSecret" -}}
{{- include "qfpurge.sectionSecret" (list . .Values.redis "redis (REDIS_URL)" .Values.redis.url) -}}
{{- end -}}

{{- define "qfpurge.monitorSecret" -}}
{{- $a := .Values.monitor.auth -}}
{{- $inline := false -}}
{{- if eq $a.mode "token" -}}{{- $inline = $a.token -}}
{{- else if eq $a.mode "basic" -}}{{- $inline = and $a.user $a.password -}}
{{- else if eq $a.mode "both" -}}{{- $inline = and $a.token $a.user $a.password -}}
{{- else -}}{{- fail (printf "qfpurge: monitor.auth.mode %q: want token, basic or both" $a.mode) -}}
{{- end -}}
{{- include "qfpurge.sectionSecret" (list . $a "monitor.auth (the monitor listens beyond loopback in a pod and needs credentials)" $inline) -}}
{{- end -}}

{{- define "qfpurge.apiSecret" -}}
{{- include "qfpurge.sectionSecret" (list . .Values.api "api (QFPURGE_API_TOKENS)" .Values.api.tokens) -}}
{{- end -}}

{{/* Whether the chart must create its own Secret. */}}
{{- define "qfpurge.createSecret" -}}
{{- $name := include "qfpurge.secretName" . -}}
{{- if or (eq (include "qfpurge.qianfanSecret" .) $name) (eq (include "qfpurge.redisSecret" .) $name) (eq (include "qfpurge.monitorSecret" .) $name) (and .Values.api.enabled (eq (include "qfpurge.apiSecret" .) $name)) (and .Values.qianfan.read.enabled (eq (include "qfpurge.qianfanReadSecret" .) $name)) -}}
true
{{- end -}}
{{- end -}}

{{- define "qfpurge.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{- define "qfpurge.scheduleConfigMap" -}}
{{- if .Values.schedule.existingConfigMap -}}
{{- .Values.schedule.existingConfigMap -}}
{{- else -}}
{{- printf "%s-schedule" (include "qfpurge.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The monitor's host names: the values' and the monitor Service's DNS names. */}}
{{- define "qfpurge.monitorHosts" -}}
{{- $hosts := list -}}
{{- range .Values.monitor.hosts -}}{{- $hosts = append $hosts . -}}{{- end -}}
{{- if .Values.monitor.service.enabled -}}
{{- $svc := printf "%s-monitor" (include "qfpurge.fullname" .) -}}
{{- $hosts = append $hosts $svc -}}
{{- $hosts = append $hosts (printf "%s.%s" $svc .Release.Namespace) -}}
{{- $hosts = append $hosts (printf "%s.%s.svc" $svc .Release.Namespace) -}}
{{- $hosts = append $hosts (printf "%s.%s.svc.%s" $svc .Release.Namespace .Values.monitor.service.clusterDomain) -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}

{{- define "qfpurge.podAnnotations" -}}
{{- if include "qfpurge.createSecret" . }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- if .Values.monitor.prometheusAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.monitor.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
