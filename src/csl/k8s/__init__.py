"""Kubernetes: render a method variant's pretraining as a Kubeflow PyTorchJob and validate it
offline (the CRD's OpenAPI schema plus the operator's webhook rules)."""
