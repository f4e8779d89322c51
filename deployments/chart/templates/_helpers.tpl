{{/* The service name: the app label and the container name. */}}
{{- define "rollout-service.app" -}}
{{ .Values.service | default .Values.app | default .Chart.Name }}
{{- end }}

{{/* The version label; a release without a version is refused. */}}
{{- define "rollout-service.version" -}}
{{ required "values.version is required" .Values.version }}
{{- end }}

{{/* Selector labels: immutable once the Deployment exists. */}}
{{- define "rollout-service.selectorLabels" -}}
app: {{ include "rollout-service.app" . | quote }}
version: {{ include "rollout-service.version" . | quote }}
{{- end }}

{{/* Labels of the Deployment itself. */}}
{{- define "rollout-service.labels" -}}
{{ include "rollout-service.selectorLabels" . }}
helm.sh/chart: {{ include "rollout-service.chart" . | quote }}
{{- end }}

{{/* <repository>:<tag>, defaulting to <service>:<version>. */}}
{{- define "rollout-service.image" -}}
{{ .Values.image.repository | default .Values.service | default .Values.app | default .Chart.Name }}:{{ .Values.image.tag | default .Values.version }}
{{- end }}

{{/* helm.sh/chart label: <chart name>-<chart version>. */}}
{{- define "rollout-service.chart" -}}
{{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
