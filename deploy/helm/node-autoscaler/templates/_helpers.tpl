{{/* The chart name, or nameOverride. */}}
{{- define "node-autoscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: fullnameOverride, or the release name (with the chart name unless it has it). */}}
{{- define "node-autoscaler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "node-autoscaler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "node-autoscaler.labels" -}}
helm.sh/chart: {{ include "node-autoscaler.chart" . }}
{{ include "node-autoscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: node-autoscaler
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "node-autoscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "node-autoscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "node-autoscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "node-autoscaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "node-autoscaler.leaseName" -}}
{{- default (include "node-autoscaler.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "node-autoscaler.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "node-autoscaler.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Rules on namespaced objects: the three kinds, Events, Cluster API.
Granted cluster-wide (ClusterRole), or per watched namespace (Role) when watchNamespaces is set.
*/}}
{{- define "node-autoscaler.namespacedRules" -}}
# Read the three kinds.
- apiGroups: ["autoscaler.dev"]
  resources: ["horizontalautoscalers", "metricsproducers"]
  verbs: ["get", "list", "watch"]
# Read node groups and write spec.replicas (the service's decision, a merge patch).
- apiGroups: ["autoscaler.dev"]
  resources: ["scalablenodegroups"]
  verbs: ["get", "list", "watch", "patch"]
# Report status, conditions and the algorithm's history (a PUT of /status).
- apiGroups: ["autoscaler.dev"]
  resources: ["horizontalautoscalers/status", "metricsproducers/status", "scalablenodegroups/status"]
  verbs: ["update"]
# Record Events on the three kinds (core Events; repeats are patched with a count).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.clusterAPI }}
# Cluster API node groups: read them, resize them through /scale only.
- apiGroups: ["cluster.x-k8s.io"]
  resources: ["machinedeployments", "machinesets"]
  verbs: ["get"]
- apiGroups: ["cluster.x-k8s.io"]
  resources: ["machinedeployments/scale", "machinesets/scale"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}

{{/* Rules on cluster-scoped objects (and pods, which capacity is counted over). */}}
{{- define "node-autoscaler.clusterRules" -}}
{{- if .Values.rbac.nodesAndPods }}
# Node readiness and capacity, pending and running pods (reservedCapacity, pendingCapacity).
- apiGroups: [""]
  resources: ["nodes", "pods"]
  verbs: ["list", "watch"]
{{- end }}
# Authenticate and authorize callers of the HTTP API that present a Kubernetes token.
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}
