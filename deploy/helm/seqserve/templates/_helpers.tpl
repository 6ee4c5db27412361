{{/* Names and labels shared by every object. */}}
{{- define "seqserve.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "seqserve.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "seqserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seqserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "seqserve.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "seqserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "seqserve.image" -}}
{{- if .Values.gpu.enabled }}
{{- printf "%s:%s" .Values.gpu.image.repository (default (printf "%s-cuda" .Chart.AppVersion) .Values.gpu.image.tag) }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "seqserve.modelRepositoryPath" -}}
{{- if eq .Values.modelRepository.source "pvc" }}{{ .Values.modelRepository.pvc.mountPath }}{{ else }}{{ .Values.modelRepository.imagePath }}{{ end }}
{{- end }}

{{/* Refuse values that would render a chart that loses requests or cannot be drained. */}}
{{- define "seqserve.validate" -}}
{{- $l := .Values.lifecycle }}
{{- $afterTerm := add $l.preStopSeconds $l.drainSeconds $l.gracefulShutdownSeconds }}
{{- if le (int $l.terminationGracePeriodSeconds) (int $afterTerm) }}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds (%v) must exceed preStopSeconds + drainSeconds + gracefulShutdownSeconds (%v), or in-flight requests are killed" $l.terminationGracePeriodSeconds $afterTerm) }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $min := ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled }}
{{- if ge (int .Values.podDisruptionBudget.minAvailable) (int $min) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) must be below the minimum replica count (%v), or no pod could ever be evicted" .Values.podDisruptionBudget.minAvailable $min) }}
{{- end }}
{{- end }}
{{- if not (has .Values.modelRepository.source (list "image" "pvc")) }}
{{- fail "modelRepository.source must be image or pvc" }}
{{- end }}
{{- if and (eq .Values.modelRepository.source "pvc") (not .Values.modelRepository.pvc.claimName) }}
{{- fail "modelRepository.pvc.claimName is required with modelRepository.source=pvc" }}
{{- end }}
{{- range $key := keys .Values.apiKeys }}
{{- if not (has $key (list "existingSecret" "secretKey")) }}
{{- fail (printf "apiKeys.%s: API keys never go in values; put them in a Secret and set apiKeys.existingSecret" $key) }}
{{- end }}
{{- end }}
{{- range $key := list "SEQSERVE_HOST" "SEQSERVE_PORT" "SEQSERVE_MODEL_REPOSITORY" "SEQSERVE_PROVIDERS" "SEQSERVE_API_KEYS" "SEQSERVE_GRACEFUL_SHUTDOWN_SECONDS" "SEQSERVE_DRAIN_SECONDS" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s is set by the chart from its own values; remove it from config" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled }}
{{- fail "enable metrics.serviceMonitor or metrics.podMonitor, not both: every pod would be scraped twice" }}
{{- end }}
{{- end }}
