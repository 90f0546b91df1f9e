{{- /*
Names. Every object name is "<release>-dra-gpu" plus a suffix of at most 16 characters; the base is cut to 47
so that each stays a valid 63-character DNS label (Services need that).
*/}}
{{- define "dra-gpu.name" -}}
{{- printf "%s-dra-gpu" .Release.Name | trunc 47 | trimSuffix "-" -}}
{{- end -}}

{{- define "dra-gpu.labels" -}}
app.kubernetes.io/name: dra-driver-gpu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "dra-gpu.selectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- /*
The driver name, and everything derived from it. This is the only place the chart reads .Values.driverName:
the ResourceSlices' spec.driver (the plugin's DRIVER_NAME), the DeviceClasses' names and CEL selectors, the
admission policy, the webhook's --driver and the controller's DRIVER_NAME all come from here.
*/}}
{{- define "dra-gpu.driverName" -}}
{{- .Values.driverName -}}
{{- end -}}

{{- /* The DeviceClasses' domain: the driver name without a leading "gpu." (dra_driver.classes.class_name). */}}
{{- define "dra-gpu.classDomain" -}}
{{- trimPrefix "gpu." (include "dra-gpu.driverName" .) -}}
{{- end -}}

{{- /* The plugin's ServiceAccount and the user name its tokens authenticate as. */}}
{{- define "dra-gpu.pluginServiceAccount" -}}
{{- include "dra-gpu.name" . -}}
{{- end -}}

{{- define "dra-gpu.pluginUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "dra-gpu.pluginServiceAccount" .) -}}
{{- end -}}

{{- define "dra-gpu.image" -}}
{{- $tag := .Values.image.tag -}}
{{- if .Values.simulatedGpus.enabled -}}
{{- $tag = .Values.simulatedGpus.imageTag | default (printf "%s-simulated" .Values.image.tag) -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{- define "dra-gpu.webhookName" -}}
{{- printf "%s-webhook" (include "dra-gpu.name" .) -}}
{{- end -}}

{{- define "dra-gpu.webhookSecret" -}}
{{- .Values.webhook.tls.secretName | default (printf "%s-tls" (include "dra-gpu.webhookName" .)) -}}
{{- end -}}
