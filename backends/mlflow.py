"""Model registry `mlflow`: MLflow 3's model registry, prompt registry and run tracking.

What the registry keeps is managed by `specops.backends.mlflow_provider` (resource types
`prompt` and `registered_model`); the step runtime talks to the same store through
`specops.runtime.tracking`. This module only declares the entry of the backend registry, so
listing backends never imports MLflow.
"""

NAME = "mlflow"
FORMAT = "MLflow 3 model registry, prompt registry and tracking"
RESOURCE_TYPES = ("prompt", "registered_model")
PROVIDER = "specops.backends.mlflow_provider"
