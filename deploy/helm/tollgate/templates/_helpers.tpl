{{/* Labels on every object; the selector labels are the stable subset. */}}
{{- define "tollgate.labels" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/part-of: tollgate
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/component: node-agent
{{- end }}

{{/* Helm bookkeeping labels, kept off selectors and pod templates. */}}
{{- define "tollgate.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "tollgate.namespace" -}}
{{ .Values.namespace.name }}
{{- end }}
