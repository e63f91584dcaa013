"""Stage entry points. DVC (dvc.yaml) and Kubeflow call these same functions."""
