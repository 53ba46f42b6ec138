{{/* The release's name for its objects, at most 63 characters. */}}
{{- define "trail.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "trail.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "trail.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: traild
{{- end -}}

{{- define "trail.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "trail.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "trail.fullname" .)) -}}
{{- end -}}

{{/* Whether the Secret holds a key: listed for an existing Secret, non-empty for the chart's. */}}
{{- define "trail.hasKey" -}}
{{- if .root.Values.secrets.existingSecret -}}
{{- if has .key .root.Values.secrets.existingSecretKeys }}true{{ end -}}
{{- else if index .root.Values.secrets.create .key }}true{{ end -}}
{{- end -}}

{{/* trail.toml: the chart's settings, then .Values.config over them. */}}
{{/* The Host names /mcp answers: localhost (kubectl port-forward), the Service's DNS names, and mcp.allowedHosts. */}}
{{- define "trail.mcpHosts" -}}
{{- $svc := include "trail.fullname" . -}}
{{- $names := list "localhost" "127.0.0.1" "::1" $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- join "," (concat $names .Values.mcp.allowedHosts) -}}
{{- end -}}

{{- define "trail.toml" -}}
{{- $cfg := dict
  "nats" (dict "url" .Values.nats.url "stream_replicas" .Values.nats.streamReplicas)
  "http" (dict "addr" (printf "0.0.0.0:%v" .Values.service.httpPort))
  "metrics" (dict "addr" (printf "0.0.0.0:%v" .Values.service.metricsPort))
  "mcp" (dict "enabled" .Values.mcp.enabled "allowed_hosts" (include "trail.mcpHosts" .) "allowed_origins" (join "," .Values.mcp.allowedOrigins))
  "integrity" (dict "checkpoint_interval_s" .Values.integrity.checkpointIntervalSeconds "checkpoint_max_age_s" .Values.integrity.checkpointMaxAgeSeconds)
  "retention" (dict "days" .Values.retention.days "tenant_days" .Values.retention.tenantDays "interval_s" .Values.retention.intervalSeconds "archive_dir" (ternary "/var/lib/trail/archives" "" (gt (int .Values.retention.days) 0)))
  "shutdown" (dict "deadline_s" .Values.shutdownDeadlineSeconds)
  "log" (dict "format" "json") -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy .Values.config) -}}
# Rendered by the Helm chart from its values; secrets come as TRAIL_* variables.
{{- range $section := keys $cfg | sortAlpha }}
[{{ $section }}]
{{- $keys := index $cfg $section }}
{{- range $k := keys $keys | sortAlpha }}
{{- $v := index $keys $k }}
{{ $k }} = {{ if kindIs "string" $v }}{{ $v | quote }}{{ else if kindIs "bool" $v }}{{ $v }}{{ else }}{{ int64 $v }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}
