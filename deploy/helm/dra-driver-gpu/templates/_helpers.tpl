{{- define "dra-gpu.name" -}}{{ .Release.Name }}-dra-gpu{{- end -}}
{{- define "dra-gpu.labels" -}}
app.kubernetes.io/name: dra-driver-gpu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
