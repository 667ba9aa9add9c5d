{{/* Names, labels and the shared pieces of the pod spec. */}}

{{- define "patina.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "patina.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "patina.selectorLabels" -}}
app.kubernetes.io/name: {{ include "patina.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "patina.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "patina.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Pods carrying this label may reach the TLS port through the NetworkPolicy. */}}
{{- define "patina.clientLabel" -}}
{{- printf "%s-client" (include "patina.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "patina.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "patina.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "patina.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Secrets: an existing one when named, else the one this chart creates. */}}
{{- define "patina.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "patina.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "patina.tokenSecretName" -}}
{{- default (printf "%s-token" (include "patina.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "patina.identitySecretName" -}}
{{- default (printf "%s-age-identity" (include "patina.fullname" .)) .Values.sidecar.age.identitySecret -}}
{{- end -}}

{{- define "patina.sourceSecretName" -}}
{{- default (printf "%s-sidecar-source" (include "patina.fullname" .)) .Values.sidecar.dir.secretName -}}
{{- end -}}

{{/* Sockets live one level below the emptyDir mounts: the service creates that directory
     itself (0700, its own uid), since it refuses a run dir wider than 0700 and an emptyDir's
     root is 0777. */}}
{{- define "patina.runDir" -}}/run/patina/private{{- end -}}
{{- define "patina.adminSocket" -}}/run/patina-admin/private/admin.sock{{- end -}}

{{/* The sidecar's source arguments, shared by its command and its readiness probe. */}}
{{- define "patina.sidecarSourceArgs" -}}
{{- if eq .Values.sidecar.source "age" -}}
- --source
- age:/var/run/patina-source/{{ .Values.sidecar.age.vaultKey }}
- --identity
- /run/secrets/patina-age/identity
{{- else -}}
- --source
- dir:/var/run/patina-source
{{- end }}
- --admin-socket
- {{ include "patina.adminSocket" . }}
{{- end -}}

{{/* The probe command: GET /health over the public Unix socket (the image's small
     standard-library probe; `patina health` does the same but loads the whole CLI). */}}
{{- define "patina.healthCommand" -}}
exec:
  command: ["patina-healthcheck"]
{{- end -}}
