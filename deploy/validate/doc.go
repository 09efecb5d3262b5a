// Package validate builds every kustomization under deploy/ with
// kustomize's own Go API (krusty), decodes every object strictly into the
// k8s.io/api types (an unknown or misspelt field fails), checks the KEDA
// ScaledObject against the field list of KEDA's CRD, and loads the compose
// file with compose-go. It is its own module so that these heavy
// dependencies stay out of the programs' go.mod; .ci/run tests it.
package validate
