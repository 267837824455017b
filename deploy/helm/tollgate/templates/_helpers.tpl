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

{{/* The admission webhook's labels (deploy/webhook's), and its selector subset. */}}
{{- define "tollgate.webhookLabels" -}}
{{ include "tollgate.labels" . }}
app.kubernetes.io/component: admission-webhook
{{- end }}

{{- define "tollgate.webhookSelectorLabels" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/component: admission-webhook
{{- end }}

{{/* The webhook's image: the chart's, unless webhook.image says otherwise. */}}
{{- define "tollgate.webhookImage" -}}
{{ .Values.webhook.image.repository | default .Values.image.repository }}:{{ .Values.webhook.image.tag | default .Values.image.tag }}
{{- end }}

{{/*
tollgated's own deadline (--timeout): 2s under the API server's timeoutSeconds, at most 8s
(tollgated refuses 10s or more), so the API server gets Tollgate's answer, not a timeout.
*/}}
{{- define "tollgate.webhookTimeout" -}}
{{ min 8 (sub (int .Values.webhook.timeoutSeconds) 2) }}s
{{- end }}

{{/* Refuses webhook values that would render a webhook that cannot work; renders nothing. */}}
{{- define "tollgate.webhookValidate" -}}
{{- $w := .Values.webhook }}
{{- if not (has $w.failurePolicy (list "Ignore" "Fail")) }}
{{- fail (printf "webhook.failurePolicy %q: want Ignore or Fail" $w.failurePolicy) }}
{{- end }}
{{- $timeout := int $w.timeoutSeconds }}
{{- if or (lt $timeout 3) (gt $timeout 30) }}
{{- fail (printf "webhook.timeoutSeconds %v: want 3 to 30 (tollgated answers 2s before it)" $w.timeoutSeconds) }}
{{- end }}
{{- if not (kindIs "bool" $w.failOpen) }}
{{- fail (printf "webhook.failOpen %v: want true or false" $w.failOpen) }}
{{- end }}
{{- range $k, $_ := $w.namespaceSelector }}
{{- if not (has $k (list "matchLabels" "matchExpressions")) }}
{{- fail (printf "webhook.namespaceSelector.%s: only matchLabels and matchExpressions are read" $k) }}
{{- end }}
{{- end }}
{{- if not $w.tls.secretName }}
{{- fail "webhook.tls.secretName: the Secret holding tls.crt and tls.key is required" }}
{{- end }}
{{- if $w.certManager.enabled }}
{{- if $w.tls.caBundle }}
{{- fail "webhook.tls.caBundle is set with webhook.certManager.enabled: cert-manager injects the CA; set webhook.certManager.enabled=false to use your own" }}
{{- end }}
{{- else }}
{{- if not $w.tls.caBundle }}
{{- fail "webhook.tls.caBundle is required with webhook.certManager.enabled=false: base64 of the CA that signed the Secret's tls.crt (gen-certs.sh's ca.crt)" }}
{{- end }}
{{- if hasPrefix "-----BEGIN" $w.tls.caBundle }}
{{- fail "webhook.tls.caBundle: want the PEM base64-encoded (base64 -w0 < ca.crt), not the PEM itself" }}
{{- end }}
{{- end }}
{{- end }}
