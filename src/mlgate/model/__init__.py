"""What a model is on disk: its manifest, the model repository folder, MLflow directories, pushed archives and
the example models."""
